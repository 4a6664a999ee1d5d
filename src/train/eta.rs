//! How long a stage has left. A stage's epochs do not all cost the same: with the feature
//! cache, the first epoch of each view runs the frozen layers on images and later ones read
//! their output back, often ten times faster; the first validation pass fills the validation
//! cache the same way. So steps are timed by kind, and the rest of the stage is priced epoch
//! by epoch at the kind each epoch will be.

/// A running mean.
#[derive(Clone, Copy, Debug, Default)]
struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// Times one stage's steps and validation passes and prices what is left of it.
#[derive(Clone, Debug)]
pub(super) struct StageClock {
    epochs: usize,
    batches_per_epoch: usize,
    /// Whether the stage has a feature cache.
    cached: bool,
    /// Views kept per training image: epochs before this one run on images.
    views: usize,
    /// Batches of the validation pass after each epoch (0: none).
    validation_batches: usize,
    /// Steps on images, the first of the stage left out (it warms up or compiles kernels).
    image_step: Mean,
    first_step: Option<f64>,
    /// Steps on cached features.
    cached_step: Mean,
    /// The part of an image step after the frozen layers: a cached step's price until one ran.
    head_part: Mean,
    image_validation: Mean,
    cached_validation: Mean,
}

impl StageClock {
    /// A clock for a stage of `epochs` × `batches_per_epoch` steps, each epoch followed by a
    /// validation pass of `validation_batches`; `views` matters only when `cached`.
    pub fn new(
        epochs: usize,
        batches_per_epoch: usize,
        cached: bool,
        views: usize,
        validation_batches: usize,
    ) -> Self {
        Self {
            epochs,
            batches_per_epoch,
            cached,
            views: views.max(1),
            validation_batches,
            image_step: Mean::default(),
            first_step: None,
            cached_step: Mean::default(),
            head_part: Mean::default(),
            image_validation: Mean::default(),
            cached_validation: Mean::default(),
        }
    }

    /// Records a step of `seconds`, of which `prefix_seconds` ran the frozen layers to fill
    /// the cache.
    pub fn record_step(&mut self, from_cache: bool, seconds: f64, prefix_seconds: f64) {
        if from_cache {
            self.cached_step.add(seconds);
            return;
        }
        if self.first_step.is_none() {
            self.first_step = Some(seconds);
        } else {
            self.image_step.add(seconds);
        }
        if prefix_seconds > 0.0 {
            self.head_part.add((seconds - prefix_seconds).max(0.0));
        }
    }

    /// Records a validation pass of `seconds`.
    pub fn record_validation(&mut self, from_cache: bool, seconds: f64) {
        if from_cache {
            self.cached_validation.add(seconds);
        } else {
            self.image_validation.add(seconds);
        }
    }

    fn epoch_from_cache(&self, stage_epoch: usize) -> bool {
        self.cached && stage_epoch >= self.views
    }

    fn image_step_price(&self) -> Option<f64> {
        self.image_step.get().or(self.first_step)
    }

    fn step_price(&self, from_cache: bool) -> Option<f64> {
        let image = self.image_step_price();
        if !from_cache {
            return image.or(self.cached_step.get());
        }
        self.cached_step.get().or(self.head_part.get()).or(image)
    }

    /// A validation pass before one was timed is priced as that many image steps.
    fn validation_price(&self, stage_epoch: usize) -> Option<f64> {
        if self.validation_batches == 0 {
            return Some(0.0);
        }
        let from_cache = self.cached && stage_epoch >= 1;
        let image = self
            .image_validation
            .get()
            .or_else(|| Some(self.image_step_price()? * self.validation_batches as f64));
        if !from_cache {
            return image;
        }
        self.cached_validation.get().or_else(|| {
            // As much cheaper than the image pass as a cached step is than an image step.
            let ratio = self.step_price(true)? / self.image_step_price()?.max(1e-9);
            Some(image? * ratio.min(1.0))
        })
    }

    /// Seconds left in the stage after `batches_done` steps of stage epoch `stage_epoch`
    /// (from 0); `None` before anything was timed.
    pub fn seconds_left(&self, stage_epoch: usize, batches_done: usize) -> Option<f64> {
        let this_epoch = self.step_price(self.epoch_from_cache(stage_epoch))?
            * self.batches_per_epoch.saturating_sub(batches_done) as f64
            + self.validation_price(stage_epoch)?;
        let mut left = this_epoch;
        for later in stage_epoch + 1..self.epochs {
            left += self.step_price(self.epoch_from_cache(later))? * self.batches_per_epoch as f64
                + self.validation_price(later)?;
        }
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_timed_means_no_estimate() {
        let clock = StageClock::new(5, 10, true, 1, 2);
        assert_eq!(clock.seconds_left(0, 0), None);
    }

    #[test]
    fn without_a_cache_every_epoch_costs_what_its_steps_did() {
        let mut clock = StageClock::new(3, 4, false, 1, 0);
        clock.record_step(false, 9.0, 0.0); // warm-up, left out once others are timed
        clock.record_step(false, 2.0, 0.0);
        // Two steps left in epoch 0, then two epochs of 4.
        assert_eq!(clock.seconds_left(0, 2), Some(2.0 * 2.0 + 2.0 * 4.0 * 2.0));
    }

    #[test]
    fn cached_epochs_are_priced_at_the_head_part_until_timed_then_at_their_own_time() {
        // 4 epochs of 10 steps, one view: epoch 0 on images, epochs 1-3 from the cache.
        let mut clock = StageClock::new(4, 10, true, 1, 2);
        for _ in 0..10 {
            clock.record_step(false, 1.0, 0.9);
        }
        clock.record_validation(false, 2.0);
        // After epoch 0's last step: its validation on images (2 s), then three cached epochs
        // at 0.1 s a step with validation at a tenth of 2 s.
        let left = clock.seconds_left(0, 10).unwrap();
        let expected = 2.0 + 3.0 * (10.0 * 0.1 + 2.0 * 0.1);
        assert!((left - expected).abs() < 1e-9, "{left} vs {expected}");
        // The mean step time over the 30 steps left said 30 s.
        assert!(left < 0.2 * 30.0);

        clock.record_step(true, 0.05, 0.0);
        clock.record_validation(true, 0.04);
        let left = clock.seconds_left(1, 1).unwrap();
        let expected = 9.0 * 0.05 + 0.04 + 2.0 * (10.0 * 0.05 + 0.04);
        assert!((left - expected).abs() < 1e-9, "{left} vs {expected}");
    }

    #[test]
    fn each_new_view_is_an_epoch_on_images() {
        // Two views: epochs 0 and 1 on images, 2 and 3 from the cache.
        let mut clock = StageClock::new(4, 1, true, 2, 0);
        clock.record_step(false, 1.0, 0.5);
        clock.record_step(false, 1.0, 0.5);
        let left = clock.seconds_left(0, 1).unwrap();
        assert!((left - (1.0 + 0.5 + 0.5)).abs() < 1e-9, "{left}");
    }
}
