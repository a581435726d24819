//! Where each node of a task graph goes: a layered drawing, left to right.
//!
//! Ranks come from the graph (a node's longest path from a source), then each rank is ordered
//! by the barycentre of its neighbours in a few sweeps down and up (the ordering step of the
//! Sugiyama method), and positions follow from rank and order. Every step is linear in nodes
//! plus edges, or `n log n` for the sorts, so a graph of 5,000 tasks is laid out in
//! milliseconds. The maintained crates tried first (`layout-rs`, a Graphviz-like engine, and
//! `dugong`, a port of dagre) took seconds to minutes on 1,000 to 5,000 nodes (README).

/// Sweeps of barycentre ordering; more barely changes crossings on pipeline-shaped graphs.
const SWEEPS: usize = 4;

/// A node's box, and the gaps between ranks and between rows.
pub const NODE_WIDTH: f64 = 180.0;
pub const NODE_HEIGHT: f64 = 28.0;
const RANK_GAP: f64 = 60.0;
const ROW_GAP: f64 = 12.0;
const MARGIN: f64 = 10.0;

/// Where the nodes went: the top-left corner of each (by its index), and the drawing's size.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub positions: Vec<(f64, f64)>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `rank.len()` nodes with the given ranks and edges `(from, to)`. Edges may go
/// against the ranks (a collapsed family drawn as one node can have them); they are drawn
/// but do not order the nodes.
pub fn layered(rank: &[usize], edges: &[(usize, usize)]) -> Layout {
    let count = rank.len();
    let ranks = rank.iter().max().map_or(0, |max| max + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); ranks];
    for (node, &r) in rank.iter().enumerate() {
        layers[r].push(node);
    }
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(from, to) in edges {
        if rank[from] < rank[to] {
            predecessors[to].push(from);
            successors[from].push(to);
        }
    }
    // A node's place in its rank, as a fraction, so that ranks of different sizes compare.
    let mut place = vec![0.0; count];
    let settle = |layers: &[Vec<usize>], place: &mut [f64]| {
        for layer in layers {
            let size = layer.len().max(1) as f64;
            for (i, &node) in layer.iter().enumerate() {
                place[node] = (i as f64 + 0.5) / size;
            }
        }
    };
    settle(&layers, &mut place);
    for sweep in 0..SWEEPS {
        let downward = sweep % 2 == 0;
        let order: Vec<usize> = if downward {
            (1..ranks).collect()
        } else {
            (0..ranks.saturating_sub(1)).rev().collect()
        };
        for r in order {
            let neighbours = if downward { &predecessors } else { &successors };
            let mut keyed: Vec<(f64, usize)> = layers[r]
                .iter()
                .map(|&node| {
                    let around = &neighbours[node];
                    let key = if around.is_empty() {
                        place[node]
                    } else {
                        around.iter().map(|&n| place[n]).sum::<f64>() / around.len() as f64
                    };
                    (key, node)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            layers[r] = keyed.into_iter().map(|(_, node)| node).collect();
            let size = layers[r].len() as f64;
            for (i, &node) in layers[r].iter().enumerate() {
                place[node] = (i as f64 + 0.5) / size;
            }
        }
    }
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
    let row = NODE_HEIGHT + ROW_GAP;
    let mut positions = vec![(0.0, 0.0); count];
    for (r, layer) in layers.iter().enumerate() {
        // Each rank centred on the tallest.
        let offset = (tallest - layer.len()) as f64 * row / 2.0;
        for (i, &node) in layer.iter().enumerate() {
            positions[node] = (
                MARGIN + r as f64 * (NODE_WIDTH + RANK_GAP),
                MARGIN + offset + i as f64 * row,
            );
        }
    }
    Layout {
        positions,
        width: 2.0 * MARGIN + (ranks as f64 * (NODE_WIDTH + RANK_GAP) - RANK_GAP).max(0.0),
        height: 2.0 * MARGIN + tallest as f64 * row,
    }
}

/// Each node's rank: the length of its longest path from a node without predecessors, over
/// `edges` of an acyclic graph of `count` nodes.
pub fn longest_path_ranks(count: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut waiting = vec![0usize; count];
    for &(from, to) in edges {
        successors[from].push(to);
        waiting[to] += 1;
    }
    let mut rank = vec![0; count];
    let mut ready: Vec<usize> = (0..count).filter(|&n| waiting[n] == 0).collect();
    while let Some(node) = ready.pop() {
        for &next in &successors[node] {
            rank[next] = rank[next].max(rank[node] + 1);
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(next);
            }
        }
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_longest_path() {
        // a -> b -> d, a -> d, c alone.
        let edges = [(0, 1), (1, 3), (0, 3)];
        assert_eq!(longest_path_ranks(4, &edges), [0, 1, 0, 2]);
    }

    #[test]
    fn nodes_of_a_rank_do_not_overlap_and_ranks_go_left_to_right() {
        let edges = [(0, 2), (1, 2), (0, 3), (2, 4), (3, 4)];
        let ranks = longest_path_ranks(5, &edges);
        let layout = layered(&ranks, &edges);
        for a in 0..5 {
            for b in a + 1..5 {
                let (pa, pb) = (layout.positions[a], layout.positions[b]);
                if ranks[a] == ranks[b] {
                    assert!((pa.1 - pb.1).abs() >= NODE_HEIGHT, "{a} and {b} overlap");
                } else {
                    assert_eq!(pa.0 < pb.0, ranks[a] < ranks[b]);
                }
            }
        }
        for &(x, y) in &layout.positions {
            assert!(x + NODE_WIDTH <= layout.width && y + NODE_HEIGHT <= layout.height);
        }
    }

    #[test]
    fn ordering_uncrosses_a_twisted_pair() {
        // Two chains given crosswise: a0 -> b1, a1 -> b0. Ordering puts each b beside its a.
        let edges = [(0, 3), (1, 2)];
        let layout = layered(&[0, 0, 1, 1], &edges);
        let above = |x: usize, y: usize| layout.positions[x].1 < layout.positions[y].1;
        assert_eq!(above(0, 1), above(3, 2), "{layout:?}");
    }
}
