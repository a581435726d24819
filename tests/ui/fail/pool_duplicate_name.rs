mod loads {
    pipeline_core::pool!(Replica, 2);
}

mod reports {
    pipeline_core::pool!(Replica, 1);
}

fn main() {}
