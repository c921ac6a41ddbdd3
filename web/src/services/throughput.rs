//! Mails per second over the last minute, for the sparkline: a running total sampled once a
//! second by a background task ([`crate::services::live::LiveSources::sample_throughput`]),
//! drawn server-side as an inline SVG.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;

/// Samples kept: 61 samples give 60 one-second rates.
const KEEP: usize = 61;

/// The recent `(epoch seconds, running total)` samples.
#[derive(Default)]
pub struct Throughput {
    samples: Mutex<VecDeque<(f64, u64)>>,
}

impl Throughput {
    /// Adds a sample, dropping the oldest beyond a minute.
    pub fn record(&self, at_secs: f64, processed: u64) {
        if let Ok(mut s) = self.samples.lock() {
            s.push_back((at_secs, processed));
            while s.len() > KEEP {
                s.pop_front();
            }
        }
    }

    /// Rates between consecutive samples, oldest first. A total that went down (an old send
    /// left the window, Redis flushed) reads as 0 for that interval.
    pub fn rates(&self) -> Vec<f64> {
        let Ok(s) = self.samples.lock() else {
            return Vec::new();
        };
        s.iter()
            .zip(s.iter().skip(1))
            .map(|((t0, n0), (t1, n1))| {
                let dt = t1 - t0;
                if dt <= 0.0 || n1 < n0 {
                    0.0
                } else {
                    (n1 - n0) as f64 / dt
                }
            })
            .collect()
    }
}

/// An SVG polyline of `rates` (width 240, height 40), scaled to the maximum, on a fixed
/// 60-second axis with the newest sample at the right edge (so a fresh burst does not
/// stretch across the whole width).
///
/// Only numbers go into it, so it is safe to insert into the page unescaped.
pub fn sparkline_svg(rates: &[f64]) -> String {
    const W: f64 = 240.0;
    const H: f64 = 40.0;
    let slots = (KEEP - 1) as f64;
    let max = rates.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let step = W / (slots - 1.0);
    let mut points = String::new();
    for (i, r) in rates.iter().enumerate() {
        let x = W - (rates.len() - 1 - i) as f64 * step;
        let y = H - (r / max) * (H - 2.0) - 1.0;
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"sparkline\" width=\"240\" height=\"40\" viewBox=\"0 0 240 40\" role=\"img\" \
         aria-label=\"max {max:.0}/s\"><rect width=\"240\" height=\"40\" fill=\"#f8f9fa\"/>\
         <polyline fill=\"none\" stroke=\"#007bff\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples() {
        let t = Throughput::default();
        t.record(0.0, 100);
        t.record(1.0, 150);
        t.record(2.0, 150);
        t.record(4.0, 250);
        t.record(5.0, 0); // stats reset
        assert_eq!(t.rates(), vec![50.0, 0.0, 50.0, 0.0]);
        for i in 0..100 {
            t.record(10.0 + f64::from(i), 0);
        }
        assert_eq!(t.rates().len(), 60);
    }

    #[test]
    fn svg_has_one_point_per_rate() {
        let svg = sparkline_svg(&[0.0, 10.0, 5.0]);
        // Right-aligned on a 60-slot axis: 240 / 59 ≈ 4.07 px per second.
        assert!(
            svg.contains("points=\"231.9,39.0 235.9,1.0 240.0,20.0\""),
            "{svg}"
        );
        assert!(sparkline_svg(&[]).starts_with("<svg"));
    }
}
