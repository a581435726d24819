//! What the executor and compile-time benchmarks share: the graph shapes they measure, so
//! that their figures describe the same graphs, and their command-line flags.

/// The shapes measured: a chain, a fan-in, and layers.
pub const SHAPES: &[&str] = &["chain", "fan-in", "layered"];
/// Tasks per layer of the layered shape; each task requires 3 seeded-random tasks of the
/// previous layer.
pub const LAYER_WIDTH: usize = 100;

/// The dependencies of each task `0..tasks` of a shape, by index. The same seed every time,
/// so every run measures the same graph.
pub fn dependencies(shape: &str, tasks: usize) -> Vec<Vec<usize>> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    (0..tasks)
        .map(|i| match shape {
            "chain" if i > 0 => vec![i - 1],
            "fan-in" if i + 1 == tasks => (0..i).collect(),
            "layered" if i >= LAYER_WIDTH => {
                let start = (i / LAYER_WIDTH - 1) * LAYER_WIDTH;
                let mut deps: Vec<usize> = (0..3).map(|_| start + random(LAYER_WIDTH)).collect();
                deps.sort_unstable();
                deps.dedup();
                deps
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The value after `flag` on the command line (`--tasks 5000`).
pub fn flag(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
