//! Keeps the wgpu path working: a tiny network trains one epoch on whatever adapter wgpu finds
//! (lavapipe in CI).

mod common;

use std::time::Duration;

use common::TempDir;
use graft::config::{DevicePreference, TrainConfig};
use graft::models::ModelKind;
use graft::platform::device::Backend;
use graft::train::{self, TrainEvent};

#[test]
fn tiny_network_trains_on_wgpu() {
    if graft::platform::device::list_adapters().is_empty() {
        panic!("no wgpu adapter: install a Vulkan driver (mesa-vulkan-drivers) to run this test");
    }
    let data = TempDir::new("wgpu-data");
    common::demo_subset(data.path(), &["bird", "fruit"], 4);
    let runs = TempDir::new("wgpu-runs");
    let config = TrainConfig {
        data: data.path().to_path_buf(),
        runs_dir: Some(runs.path().to_path_buf()),
        model: ModelKind::TinyTest,
        input_size: Some(32),
        batch_size: 3,
        epochs: 1,
        device: DevicePreference::Gpu,
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let mut handle = train::spawn(config, None);
    let mut backend = None;
    let mut first_step = None;
    let mut kernels_announced = false;
    loop {
        match handle.next_timeout(Duration::from_secs(1200)) {
            Some(TrainEvent::Device {
                backend: b,
                description,
            }) => {
                eprintln!("device: {description}");
                backend = Some(b);
            }
            Some(TrainEvent::CompilingKernels) => {
                assert!(first_step.is_none(), "announced before the first step");
                kernels_announced = true;
            }
            Some(TrainEvent::Batch(_)) if first_step.is_none() => {
                first_step = Some(started.elapsed());
            }
            Some(TrainEvent::Failed(m)) => panic!("wgpu run failed: {m}"),
            Some(TrainEvent::Finished(_)) => break,
            Some(_) => {}
            None => panic!("no Finished event"),
        }
    }
    eprintln!(
        "first wgpu step after {:?}, whole run {:?}",
        first_step,
        started.elapsed()
    );
    assert_eq!(backend, Some(Backend::Wgpu));
    assert!(kernels_announced, "the GPU's first step is announced");
}

/// A seeded network has the same weights on every backend (each has its own random generator,
/// so they are drawn on the CPU): the same seed gives the same logits on wgpu as on the CPU.
#[test]
fn a_seeded_network_is_the_same_on_wgpu_and_on_the_cpu() {
    use burn::tensor::{Device, Tensor, TensorData};
    use graft::models::{Network, NetworkSpec};
    if graft::platform::device::list_adapters().is_empty() {
        panic!("no wgpu adapter: install a Vulkan driver (mesa-vulkan-drivers) to run this test");
    }
    let spec = NetworkSpec {
        kind: ModelKind::TinyTest,
        classes: 3,
        head: Default::default(),
        input_size: 32,
    };
    let gpu = graft::platform::device::select(DevicePreference::Gpu).device;
    let input: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let logits = |device: &Device| -> Vec<f32> {
        use burn::module::Module;
        let network = Network::new_seeded(&spec, device, 7).valid();
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [2, 3, 32, 32]), device);
        network.forward(x).into_data().try_to_vec::<f32>().unwrap()
    };
    let (cpu, wgpu) = (logits(&Device::flex()), logits(&gpu));
    let diff = cpu
        .iter()
        .zip(&wgpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "logits differ by {diff}: {cpu:?} vs {wgpu:?}");
}
