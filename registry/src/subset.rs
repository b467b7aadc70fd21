//! Deterministic subsets: which K of a service's N instances each of its C
//! watching clients uses, so that every instance gets the same share of
//! clients, and one instance joining changes each client's subset by at
//! most one instance besides, perhaps, the newcomer itself.
//!
//! The registry knows every client watching a service (by its lease), so
//! it can rank them — which random subsetting (each client hashing on its
//! own) can't, and why its balance is uneven. Instances are laid out in id
//! order on a ring, clients evenly over the same ring: client `r` of `C`
//! starts at instance `⌊r·N/C⌋` and takes the next K, wrapping. The
//! clients whose window covers an instance are those whose start lies in
//! the K places up to it, `⌊K·C/N⌋` or `⌈K·C/N⌉` of them: every instance
//! is in as many subsets as any other, give or take one. With 64 clients,
//! 32 instances and K = 8, exactly 16 each.
//!
//! ```text
//! instances (by id)  0 1 2 3 4 5 6 7 8 9 …
//! client 0           ■ ■ ■ ■ ■ ■ ■ ■
//! client 1           ■ ■ ■ ■ ■ ■ ■ ■
//! client 2             ■ ■ ■ ■ ■ ■ ■ ■
//! client 3             ■ ■ ■ ■ ■ ■ ■ ■
//! client 4               ■ ■ ■ ■ ■ ■ ■ ■
//! ```
//!
//! One instance joining shifts the starts by less than one place and the
//! instances after it by one, so each client's window gains at most one
//! old instance (and the newcomer, when it lands inside the window). (Google's SRE book, ch. 20, shuffles
//! per round instead: as even, but a join reshuffles everything; Finagle's
//! deterministic aperture places both on a ring, as here.)

/// The positions (in id order) of the instances in the subset of the
/// client ranked `rank` among `clients`, `k` of `instances`; all of them
/// when `k` is not smaller.
pub fn subset(instances: usize, clients: usize, rank: usize, k: usize) -> Vec<usize> {
    if k >= instances {
        return (0..instances).collect();
    }
    let clients = clients.max(1);
    let start = (rank % clients) as u128 * instances as u128 / clients as u128;
    // start < instances, which is a usize.
    let start = start as usize;
    (0..k).map(|j| (start + j) % instances).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// How many subsets each instance is in.
    fn coverage(instances: usize, clients: usize, k: usize) -> Vec<usize> {
        let mut count = vec![0; instances];
        for rank in 0..clients {
            for i in subset(instances, clients, rank, k) {
                count[i] += 1;
            }
        }
        count
    }

    fn max_over_mean(values: &[f64]) -> f64 {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        values.iter().copied().fold(0.0, f64::max) / mean
    }

    /// Random (rendezvous) subsets, for comparison: each client takes the
    /// K instances whose hash with it is highest.
    fn rendezvous(instances: usize, client: usize, k: usize) -> Vec<usize> {
        let hash = |i: usize| {
            let mut x = (client as u64) << 32 ^ i as u64 ^ 0x9e37_79b9_7f4a_7c15;
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            x ^ (x >> 33)
        };
        let mut all: Vec<usize> = (0..instances).collect();
        all.sort_by_key(|&i| std::cmp::Reverse(hash(i)));
        all.truncate(k);
        all
    }

    #[test]
    fn sixty_four_clients_over_thirty_two_instances_load_every_instance_alike() {
        let count = coverage(32, 64, 8);
        assert!(count.iter().all(|&c| c == 16), "{count:?}");
        // Each client spreads its requests evenly over its K: requests per
        // instance follow the connections.
        let requests: Vec<f64> = count.iter().map(|&c| c as f64 / 8.0).collect();
        assert_eq!(max_over_mean(&requests), 1.0);
        // Random subsets of the same size are far less even.
        let mut random = vec![0.0; 32];
        for client in 0..64 {
            for i in rendezvous(32, client, 8) {
                random[i] += 1.0;
            }
        }
        assert!(max_over_mean(&random) > 1.15, "{random:?}");
    }

    #[test]
    fn uneven_counts_differ_by_at_most_one() {
        for (instances, clients, k) in [(31, 64, 8), (100, 7, 10), (10, 1000, 3), (33, 50, 5)] {
            let count = coverage(instances, clients, k);
            let (min, max) = (count.iter().min(), count.iter().max());
            let (Some(&min), Some(&max)) = (min, max) else {
                panic!("no instances")
            };
            assert!(max - min <= 1, "{instances}/{clients}/{k}: {count:?}");
            assert_eq!(count.iter().sum::<usize>(), clients * k);
        }
    }

    #[test]
    fn one_instance_joining_brings_at_most_one_old_instance_into_each_subset() {
        for (instances, clients, k) in [(32, 64, 8), (31, 64, 8), (100, 37, 10), (9, 5, 8)] {
            // Ids 0, 2, 4, … so a new one fits anywhere between.
            let ids: Vec<usize> = (0..instances).map(|i| i * 2).collect();
            for joined in [1, instances, instances * 2 + 1] {
                let mut more = ids.clone();
                more.push(joined);
                more.sort_unstable();
                for rank in 0..clients {
                    let before: BTreeSet<usize> = subset(instances, clients, rank, k)
                        .into_iter()
                        .map(|i| ids[i])
                        .collect();
                    let after: BTreeSet<usize> = subset(instances + 1, clients, rank, k)
                        .into_iter()
                        .map(|i| more[i])
                        .collect();
                    let added = after.difference(&before).filter(|&&i| i != joined).count();
                    assert!(
                        added <= 1,
                        "{instances}/{clients}/{k}, id {joined} joined: client {rank} \
                         {before:?} → {after:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_subset_is_k_distinct_instances_or_all_of_them() {
        let mut seen = HashMap::new();
        for rank in 0..10 {
            let s = subset(7, 10, rank, 3);
            assert_eq!(s.iter().collect::<BTreeSet<_>>().len(), 3);
            *seen.entry(s).or_insert(0) += 1;
        }
        assert!(seen.len() > 1, "clients get different subsets");
        assert_eq!(subset(3, 10, 4, 8), vec![0, 1, 2]);
        assert_eq!(subset(0, 10, 4, 8), Vec::<usize>::new());
    }
}
