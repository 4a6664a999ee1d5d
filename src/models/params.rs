//! Counting parameters (all, or those that train now) and freezing modules.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Touches every parameter, which draws the lazily initialised ones.
pub(super) struct DrawParams;

impl ModuleVisitor for DrawParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Counts learnable values: BatchNorm running statistics are state, not parameters.
#[derive(Default)]
struct ParamCounter {
    path: Vec<String>,
    count: usize,
    /// Count only parameters that receive gradients.
    trainable_only: bool,
}

impl ModuleVisitor for ParamCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.last().map(String::as_str);
        let counted = !matches!(name, Some("running_mean" | "running_var"))
            && (!self.trainable_only || param.val().is_require_grad());
        if counted {
            self.count += param.shape().num_elements();
        }
    }
}

/// The ids of the parameters that receive gradients (on an autodiff device).
#[derive(Default)]
pub(super) struct TrainableIds(pub Vec<ParamId>);

impl ModuleVisitor for TrainableIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.0.push(param.id);
        }
    }
}

/// Parameters of a module (on an autodiff device) that training updates now.
pub fn trainable_param_count<M: Module>(module: &M) -> usize {
    let mut counter = ParamCounter {
        trainable_only: true,
        ..ParamCounter::default()
    };
    module.visit(&mut counter);
    counter.count
}

/// Learnable parameters of a module (what PyTorch's `numel` over `parameters()` counts).
pub fn param_count<M: Module>(module: &M) -> usize {
    let mut counter = ParamCounter::default();
    module.visit(&mut counter);
    counter.count
}

pub(super) fn freeze_if<M: Module>(module: M, frozen: bool) -> M {
    if frozen {
        module.freeze()
    } else {
        module.unfreeze()
    }
}
