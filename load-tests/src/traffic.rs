//! Message injection: a steady rate spread over the mailboxes at random,
//! with sizes drawn from a weighted mix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use crate::farm::Farm;

/// How often the injector wakes; each tick catches up with the rate.
const TICK: Duration = Duration::from_millis(10);

/// Sizes in `min..=max` bytes, drawn with weight `weight`.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeBand {
    /// Relative share of messages in this band.
    pub weight: f64,
    /// Smallest size, bytes.
    pub min: usize,
    /// Largest size, bytes.
    pub max: usize,
}

/// A weighted mix of size bands.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeMix {
    bands: Vec<SizeBand>,
    total: f64,
}

impl SizeMix {
    /// A mix of `bands`; an error names what is wrong with them.
    pub fn new(bands: Vec<SizeBand>) -> Result<Self, String> {
        if bands.is_empty() {
            return Err("a size mix needs at least one band".into());
        }
        for (i, b) in bands.iter().enumerate() {
            if !(b.weight.is_finite() && b.weight > 0.0) {
                return Err(format!("band {i}: weight {} must be above 0", b.weight));
            }
            if b.min > b.max {
                return Err(format!("band {i}: min {} is above max {}", b.min, b.max));
            }
        }
        let total = bands.iter().map(|b| b.weight).sum();
        Ok(Self { bands, total })
    }

    /// Every message `size` bytes.
    pub fn fixed(size: usize) -> Self {
        Self {
            bands: vec![SizeBand {
                weight: 1.0,
                min: size,
                max: size,
            }],
            total: 1.0,
        }
    }

    /// The largest size the mix can draw.
    pub fn max(&self) -> usize {
        self.bands.iter().map(|b| b.max).max().unwrap_or(0)
    }

    /// A size drawn from the mix.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let mut pick = rng.gen_range(0.0..self.total);
        for band in &self.bands {
            if pick < band.weight {
                return rng.gen_range(band.min..=band.max);
            }
            pick -= band.weight;
        }
        self.bands[self.bands.len() - 1].max
    }
}

/// Steady injection into random mailboxes.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Messages per second over the whole farm.
    pub rate: f64,
    /// Their sizes.
    pub sizes: SizeMix,
}

impl Traffic {
    /// Injects until the returned task is aborted.
    pub fn spawn(self, farm: Arc<Farm>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let start = Instant::now();
            let mut sent: u64 = 0;
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * self.rate) as u64;
                while sent < due {
                    let user = rng.gen_range(1..=farm.mailboxes());
                    farm.inject(user, self.sizes.sample(&mut rng));
                    sent += 1;
                }
            }
        })
    }

    /// Puts `per_mailbox` messages into every mailbox at once (a backlog to
    /// catch up on).
    pub fn preload(farm: &Farm, per_mailbox: u32, sizes: &SizeMix) {
        let mut rng = StdRng::from_entropy();
        for _ in 0..per_mailbox {
            for user in 1..=farm.mailboxes() {
                farm.inject(user, sizes.sample(&mut rng));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_draw_within_their_bands_and_reject_nonsense() {
        let mix = SizeMix::new(vec![
            SizeBand {
                weight: 9.0,
                min: 2000,
                max: 6000,
            },
            SizeBand {
                weight: 1.0,
                min: 5 << 20,
                max: 20 << 20,
            },
        ])
        .unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let sizes: Vec<usize> = (0..10_000).map(|_| mix.sample(&mut rng)).collect();
        let big = sizes.iter().filter(|s| **s >= 5 << 20).count();
        assert!(sizes
            .iter()
            .all(|s| (2000..=6000).contains(s) || (5 << 20..=20 << 20).contains(s)));
        assert!((800..1200).contains(&big), "{big} big of 10000");
        assert_eq!(mix.max(), 20 << 20);
        assert!(SizeMix::new(vec![]).is_err());
        let err = SizeMix::new(vec![SizeBand {
            weight: 1.0,
            min: 9,
            max: 3,
        }])
        .unwrap_err();
        assert!(err.contains("min 9 is above max 3"), "{err}");
    }
}
