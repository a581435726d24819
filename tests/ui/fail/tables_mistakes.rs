use pipeline_core::prelude::*;

tables! {
    pub marts { revenue, revenue }
}

tables! {
    pub warehouse { orders }
    pub warehouse { users }
}

fn main() {}
