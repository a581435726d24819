//! Resource pools: a bound on how many tasks that name a pool run at once, across every run in
//! the process (a scheduler's overlapping runs share them). `pool!(Replica, 2)` declares one,
//! `#[task(pool = Replica)]` puts a task in it, and `[pools] replica = 4` in `pipeline.toml`
//! changes its size without a rebuild. A task waiting for a slot holds no worker slot, and
//! the free slot goes to the waiting task of highest `priority`.

mod slots;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::bail;

pub(crate) use slots::Queued;
pub use slots::{Slot, Slots};

/// A pool as `pool!` declares it.
#[derive(Debug)]
pub struct PoolDef {
    /// Its name in `pipeline.toml` and in messages: the type's name in snake case.
    pub name: &'static str,
    /// Tasks of the pool that may run at once, unless `pipeline.toml` says otherwise.
    pub size: usize,
    /// Where it is declared.
    pub module_path: &'static str,
}

/// A type declared by `pool!`, which `#[task(pool = ..)]` accepts.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pool",
    label = "not declared with `pool!`",
    note = "declare it with `pool!({Self}, 2);` (its size: how many of its tasks run at once)"
)]
pub trait Pool {
    /// The pool's definition.
    const DEF: &'static PoolDef;
}

/// One declared pool, submitted by `pool!` through `inventory`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration(pub &'static PoolDef);

inventory::collect!(Registration);

/// Every pool linked into this binary, by name. Two pools of one name are an error naming
/// both places.
pub fn registered() -> anyhow::Result<BTreeMap<&'static str, &'static PoolDef>> {
    let mut pools = BTreeMap::new();
    for Registration(def) in inventory::iter::<Registration> {
        if let Some(other) = pools.insert(def.name, *def) {
            bail!(
                "two pools are named `{}`: in {} and in {}; rename one",
                def.name,
                other.module_path,
                def.module_path
            );
        }
    }
    Ok(pools)
}

/// The pools of a process, at their configured sizes: what runs share.
#[derive(Debug, Default)]
pub struct Pools {
    by_name: HashMap<String, Arc<Slots>>,
}

impl Pools {
    /// Pools of the given sizes (at least one slot each).
    pub fn new<S: Into<String>>(sizes: impl IntoIterator<Item = (S, usize)>) -> Pools {
        Pools {
            by_name: sizes
                .into_iter()
                .map(|(name, size)| {
                    let name = name.into();
                    (name.clone(), Slots::new(name, size))
                })
                .collect(),
        }
    }

    /// The declared pools, with the sizes that `pipeline.toml` overrides. An override of a
    /// pool that does not exist is an error: a typo there would silently change nothing.
    pub fn configured(
        declared: &BTreeMap<&'static str, &'static PoolDef>,
        overrides: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Pools> {
        if let Some(unknown) = overrides
            .keys()
            .find(|name| !declared.contains_key(name.as_str()))
        {
            let known: Vec<&str> = declared.keys().copied().collect();
            bail!(
                "pipeline.toml [pools] sets `{unknown}`, which no `pool!` declares; {}",
                if known.is_empty() {
                    "this pipeline declares no pools".to_string()
                } else {
                    format!("its pools are: {}", known.join(", "))
                }
            );
        }
        Ok(Pools::new(declared.values().map(|def| {
            (
                def.name,
                overrides.get(def.name).copied().unwrap_or(def.size),
            )
        })))
    }

    /// The pool of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<Slots>> {
        self.by_name.get(name)
    }

    /// Names and sizes, sorted by name.
    pub fn sizes(&self) -> Vec<(&str, usize)> {
        let mut sizes: Vec<(&str, usize)> = self
            .by_name
            .values()
            .map(|slots| (slots.name(), slots.size()))
            .collect();
        sizes.sort_unstable();
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REPLICA: PoolDef = PoolDef {
        name: "replica",
        size: 2,
        module_path: "shop::loads",
    };

    #[test]
    fn configuration_sizes_declared_pools_and_refuses_unknown_ones() {
        let declared = BTreeMap::from([("replica", &REPLICA)]);
        let pools = Pools::configured(&declared, &BTreeMap::new()).expect("declared sizes");
        assert_eq!(pools.sizes(), [("replica", 2)]);
        let overrides = BTreeMap::from([("replica".to_string(), 5)]);
        let pools = Pools::configured(&declared, &overrides).expect("an override");
        assert_eq!(pools.sizes(), [("replica", 5)]);

        let typo = BTreeMap::from([("replcia".to_string(), 5)]);
        let err = Pools::configured(&declared, &typo).expect_err("a typo");
        assert_eq!(
            err.to_string(),
            "pipeline.toml [pools] sets `replcia`, which no `pool!` declares; its pools are: \
             replica"
        );
    }
}
