//! The graph of `#[task]` functions linked into a binary, and the start-up check for two tasks
//! with the same name in different crates (in one crate, they do not compile).

use pipeline_core::prelude::*;
use pipeline_core::{Dag, DagError};
// Links the example, whose `load` family shares its name with the task below.
use pipeline_example as _;

/// A `load` of this crate's own.
#[task(name = "load")]
async fn load_here(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[test]
fn two_tasks_with_one_name_in_two_crates_are_rejected_at_start_up_naming_both() {
    let err = Dag::from_registry().unwrap_err();
    let DagError::DuplicateName {
        name,
        first,
        second,
    } = &err
    else {
        panic!("expected a duplicate name, got {err}");
    };
    assert_eq!(name, "load");
    assert!(
        first.starts_with("pipeline_example::replica (") && first.contains("replica.rs:"),
        "{first}"
    );
    assert!(
        second.starts_with("registry (") && second.contains("registry.rs:"),
        "{second}"
    );
    assert!(
        err.to_string()
            .contains("rename one with #[task(name = \"..\")]"),
        "{err}"
    );
}
