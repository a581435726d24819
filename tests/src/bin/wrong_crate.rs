//! A binary that names, as the crate of its tasks, one that holds none.

pipeline_core::main!("wrong-crate", tasks = [pipeline_tests]);
