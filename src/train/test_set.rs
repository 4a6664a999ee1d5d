//! The test set: held out from training, from choosing the best epoch and from early stopping,
//! and scored once, at the end, on the best checkpoint.

use burn::module::Module;

use super::error::TrainError;
use super::evaluate::evaluate;
use super::events::TrainEvent;
use super::stage::RunContext;
use crate::models::key_remap::VARIANT_LEVEL;
use crate::models::{Network, load_checkpoint};
use crate::run::TestScore;

/// Scores the run's best checkpoint (loaded into `network`, the last epoch's) on the test
/// images and says so; `None` without test images or without a checkpoint.
pub(super) fn score_test(
    ctx: &RunContext,
    network: Network,
) -> Result<Option<TestScore>, TrainError> {
    let test = &ctx.dataset.test;
    let checkpoint = ctx.run.checkpoint_path();
    if test.is_empty() || !checkpoint.is_file() {
        return Ok(None);
    }
    let mut best = network.valid();
    load_checkpoint(&mut best, &checkpoint, VARIANT_LEVEL)?;
    let device = ctx.device.clone().without_autodiff();
    let score = evaluate(
        &best,
        test,
        ctx.input_size,
        ctx.config.model,
        ctx.config.batch_size,
        &device,
    )?;
    let scored = TestScore {
        correct: score.correct,
        images: test.len(),
        loss: score.loss,
    };
    ctx.events.send(TrainEvent::Tested(scored));
    Ok(Some(scored))
}
