//! The graph of `#[task]` functions linked into a binary: families, module paths, and the
//! start-up check for two tasks with the same name (which the compiler cannot see).

use pipeline_core::prelude::*;
use pipeline_core::{Dag, DagError};

mod first {
    use pipeline_core::prelude::*;

    #[task]
    pub async fn load(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

mod second {
    use pipeline_core::prelude::*;

    #[task]
    pub async fn load(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

#[task(requires = [first::Load, second::Load])]
async fn model(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[test]
fn two_tasks_with_one_name_are_rejected_at_start_up_naming_both() {
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
        first.starts_with("registry::first (") && first.contains("registry.rs:"),
        "{first}"
    );
    assert!(second.starts_with("registry::second ("), "{second}");
    assert!(
        err.to_string()
            .contains("rename one with #[task(name = \"..\")]"),
        "{err}"
    );
}
