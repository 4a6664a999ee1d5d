//! How long the window's own work takes per frame: the recent frames, and the worst since a
//! point the caller chooses (a whole run, say).

use std::collections::VecDeque;

/// Frames kept for the recent mean and maximum.
const FRAME_HISTORY: usize = 120;

/// UI work per frame, in seconds.
#[derive(Clone, Debug, Default)]
pub struct FrameTimes {
    recent: VecDeque<f64>,
    worst: f64,
    frames: usize,
}

impl FrameTimes {
    /// Records one frame's UI work.
    pub fn record(&mut self, seconds: f64) {
        self.recent.push_back(seconds);
        while self.recent.len() > FRAME_HISTORY {
            self.recent.pop_front();
        }
        self.worst = self.worst.max(seconds);
        self.frames += 1;
    }

    /// Mean and worst over the recent frames.
    pub fn recent_stats(&self) -> (f64, f64) {
        let n = self.recent.len().max(1) as f64;
        let mean = self.recent.iter().sum::<f64>() / n;
        let max = self.recent.iter().copied().fold(0.0, f64::max);
        (mean, max)
    }

    /// The worst frame and the number of frames since [`FrameTimes::restart`] (or the start).
    pub fn worst_since_restart(&self) -> (f64, usize) {
        (self.worst, self.frames)
    }

    /// Starts counting the worst frame again.
    pub fn restart(&mut self) {
        self.worst = 0.0;
        self.frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_frames_roll_while_the_worst_stays_until_restarted() {
        let mut times = FrameTimes::default();
        times.record(0.010);
        for _ in 0..FRAME_HISTORY {
            times.record(0.001);
        }
        let (mean, max) = times.recent_stats();
        assert!((mean - 0.001).abs() < 1e-12 && max == 0.001, "{mean} {max}");
        assert_eq!(times.worst_since_restart(), (0.010, FRAME_HISTORY + 1));
        times.restart();
        times.record(0.002);
        assert_eq!(times.worst_since_restart(), (0.002, 1));
    }
}
