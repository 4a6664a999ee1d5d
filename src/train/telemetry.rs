//! What each layer group's weights do during a run: how far they have moved since it started, and
//! how large their gradients are. Sums stay on the device through an epoch and are read once at
//! its end, so a step pays a few reductions and no synchronisation.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::error::TrainError;
use crate::models::{LayerGroup, Network};
use crate::run::{GroupStats, GroupTelemetry};

/// Per-group measurements across a run.
pub(super) struct Telemetry {
    names: Vec<String>,
    /// Which group each parameter belongs to.
    group_of: HashMap<ParamId, usize>,
    /// Each parameter as the run started (without autodiff).
    initial: HashMap<ParamId, Tensor<1>>,
    /// Per group, the sum over this epoch's steps of the gradient's norm.
    grad_norm_sums: Vec<Option<Tensor<1>>>,
    /// Steps this epoch.
    steps: usize,
}

impl Telemetry {
    /// Starts measuring from `network`'s weights now; `group_ids` are the parameters of each
    /// group in `groups`.
    pub fn start(network: &Network, groups: &[LayerGroup], group_ids: &[Vec<ParamId>]) -> Self {
        let mut group_of = HashMap::new();
        for (group, ids) in group_ids.iter().enumerate() {
            group_of.extend(ids.iter().map(|id| (*id, group)));
        }
        let mut initial = Flattened::default();
        network.visit(&mut initial);
        Self {
            names: groups.iter().map(|g| g.name.clone()).collect(),
            grad_norm_sums: vec![None; groups.len()],
            initial: initial
                .0
                .into_iter()
                .filter(|(id, _)| group_of.contains_key(id))
                .collect(),
            group_of,
            steps: 0,
        }
    }

    /// Adds one step's gradient norms (before the optimiser consumes the gradients).
    pub fn record_step(&mut self, network: &Network, grads: &GradientsParams) {
        let mut squares = GroupSquares {
            group_of: &self.group_of,
            sums: vec![None; self.names.len()],
            grads: Some(grads),
            initial: None,
        };
        network.visit(&mut squares);
        for (sum, square) in self.grad_norm_sums.iter_mut().zip(squares.sums) {
            if let Some(square) = square {
                let norm = square.sqrt();
                *sum = Some(match sum.take() {
                    Some(s) => s + norm,
                    None => norm,
                });
            }
        }
        self.steps += 1;
    }

    /// The epoch's figures for every group; starts the next epoch's gradient sums.
    pub fn end_epoch(&mut self, network: &Network) -> Result<GroupTelemetry, TrainError> {
        let mut moved = GroupSquares {
            group_of: &self.group_of,
            sums: vec![None; self.names.len()],
            grads: None,
            initial: Some(&self.initial),
        };
        network.visit(&mut moved);
        let mut base = GroupSquares {
            group_of: &self.group_of,
            sums: vec![None; self.names.len()],
            grads: None,
            initial: None,
        };
        for (id, w0) in &self.initial {
            base.add(*id, w0.clone().square().sum());
        }
        let steps = self.steps.max(1) as f64;
        let mut groups = Vec::with_capacity(self.names.len());
        for (g, name) in self.names.iter().enumerate() {
            let change = read(moved.sums[g].take())?.sqrt();
            let size = read(base.sums[g].take())?.sqrt();
            let grad_norm = read(self.grad_norm_sums[g].take())? / steps;
            let weight_change = if size > 0.0 { change / size } else { change };
            let stats = GroupStats {
                weight_change,
                grad_norm,
            };
            groups.push((name.clone(), stats));
        }
        self.steps = 0;
        Ok(GroupTelemetry(groups))
    }
}

fn read(sum: Option<Tensor<1>>) -> Result<f64, TrainError> {
    match sum {
        Some(t) => super::step::scalar(t),
        None => Ok(0.0),
    }
}

/// Every float parameter, flattened and without autodiff.
#[derive(Default)]
struct Flattened(Vec<(ParamId, Tensor<1>)>);

impl ModuleVisitor for Flattened {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .push((param.id, flat(param.val().without_autodiff())));
    }
}

fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

/// Per group, the sum of squares of each parameter's gradient (with `grads`) or of its change
/// since the start (with `initial`).
struct GroupSquares<'a> {
    group_of: &'a HashMap<ParamId, usize>,
    sums: Vec<Option<Tensor<1>>>,
    grads: Option<&'a GradientsParams>,
    initial: Option<&'a HashMap<ParamId, Tensor<1>>>,
}

impl GroupSquares<'_> {
    fn add(&mut self, id: ParamId, square: Tensor<1>) {
        let Some(&group) = self.group_of.get(&id) else {
            return;
        };
        let sum = &mut self.sums[group];
        *sum = Some(match sum.take() {
            Some(s) => s + square,
            None => square,
        });
    }
}

impl ModuleVisitor for GroupSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id = param.id;
        if !self.group_of.contains_key(&id) {
            return;
        }
        let value = if let Some(grads) = self.grads {
            grads.get::<D>(id).map(flat)
        } else if let Some(w0) = self.initial.and_then(|initial| initial.get(&id)) {
            let w = flat(param.val().without_autodiff());
            Some(w - w0.clone())
        } else {
            None
        };
        if let Some(v) = value {
            self.add(id, v.square().sum());
        }
    }
}
