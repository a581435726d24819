pipeline_core::main!("daily", tasks = [pipeline_example]);
