//! Wake-up lateness in a fixed amount of memory: 1 us buckets, exact minimum, maximum and
//! average, percentiles to the microsecond (the resolution cyclictest reports).

use serde::Serialize;

/// Buckets of 1 us; later samples count in `overflow` (and still in min, max and the average).
pub const BUCKETS: usize = 10_000;

/// Wake-up lateness, in a fixed amount of memory.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Box<[u64]>,
    overflow: u64,
    samples: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            overflow: 0,
            samples: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one sample, in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        match self.buckets.get_mut((ns / 1000) as usize) {
            Some(bucket) => *bucket += 1,
            None => self.overflow += 1,
        }
        self.samples += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// The smallest whole microsecond at or below which at least `fraction` of the samples lie.
    /// Samples beyond the buckets count as the maximum.
    pub fn percentile_us(&self, fraction: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = ((fraction * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (us, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return us as u64;
            }
        }
        self.max_ns / 1000
    }

    /// Adds another histogram's samples to this one (the total of several threads).
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in self.buckets.iter_mut().zip(&other.buckets) {
            *bucket += count;
        }
        self.overflow += other.overflow;
        self.samples += other.samples;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The statistics the output shows.
    pub fn stats(&self) -> Stats {
        let empty = self.samples == 0;
        Stats {
            samples: self.samples,
            min_us: if empty { 0 } else { self.min_ns / 1000 },
            avg_us: if empty {
                0.0
            } else {
                (self.sum_ns as f64 / self.samples as f64 / 1000.0 * 100.0).round() / 100.0
            },
            p50_us: self.percentile_us(0.50),
            p99_us: self.percentile_us(0.99),
            max_us: self.max_ns / 1000,
        }
    }

    /// Non-empty buckets as (microseconds, count), then the overflow as (`BUCKETS`, count).
    pub fn counts(&self) -> Vec<(u64, u64)> {
        let mut counts: Vec<(u64, u64)> = (self.buckets.iter().enumerate())
            .filter(|(_, c)| **c > 0)
            .map(|(us, c)| (us as u64, *c))
            .collect();
        if self.overflow > 0 {
            counts.push((BUCKETS as u64, self.overflow));
        }
        counts
    }
}

/// One phase's statistics, of one loop or of all: keys of the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub samples: u64,
    pub min_us: u64,
    pub avg_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(samples_us: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &us in samples_us {
            h.record(us * 1000);
        }
        h
    }

    #[test]
    fn statistics_on_known_inputs() {
        let h = histogram(&(1..=100).collect::<Vec<_>>());
        let s = h.stats();
        assert_eq!((s.samples, s.min_us, s.max_us), (100, 1, 100));
        assert_eq!(s.avg_us, 50.5);
        assert_eq!(s.p50_us, 50);
        assert_eq!(s.p99_us, 99);
    }

    #[test]
    fn exact_min_max_average_in_nanoseconds() {
        let mut h = Histogram::default();
        for ns in [1500, 2500, 3500] {
            h.record(ns);
        }
        let s = h.stats();
        assert_eq!((s.min_us, s.max_us, s.avg_us), (1, 3, 2.5));
        assert_eq!(s.p50_us, 2);
    }

    #[test]
    fn samples_beyond_the_buckets_count_as_the_maximum() {
        let mut h = histogram(&[5; 98]);
        h.record(50_000_000);
        h.record(60_000_000);
        let s = h.stats();
        assert_eq!(s.p50_us, 5);
        assert_eq!(s.p99_us, 60_000);
        assert_eq!(s.max_us, 60_000);
        assert_eq!(h.counts(), vec![(5, 98), (BUCKETS as u64, 2)]);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let s = Histogram::default().stats();
        assert_eq!((s.samples, s.min_us, s.p99_us, s.max_us), (0, 0, 0, 0));
    }

    #[test]
    fn memory_does_not_grow_with_samples() {
        let mut h = Histogram::default();
        for i in 0..1_000_000u64 {
            h.record(i % 20_000_000);
        }
        assert_eq!(h.buckets.len(), BUCKETS);
        assert_eq!(h.stats().samples, 1_000_000);
    }
}
