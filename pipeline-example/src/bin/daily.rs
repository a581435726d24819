use pipeline_example as _;

pipeline_core::main!("daily");
