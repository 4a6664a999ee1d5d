//! Choosing where to train: a GPU through wgpu when there is one, otherwise the CPU.

use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

/// Where to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DevicePreference {
    /// A GPU through wgpu when a hardware adapter exists, otherwise the CPU.
    Auto,
    /// The CPU backend.
    Cpu,
    /// wgpu, whatever adapter it finds (a software one too).
    Gpu,
}

/// Which backend a device runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// burn's `flex` CPU backend.
    Cpu,
    /// burn's wgpu backend.
    Wgpu,
}

/// A compute device and what a person should be told about it.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    /// The burn device (without autodiff).
    pub device: Device,
    /// Which backend.
    pub backend: Backend,
    /// For people: "GPU — NVIDIA …" or "CPU — no GPU adapter found".
    pub description: String,
}

/// A wgpu adapter as wgpu reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name.
    pub name: String,
    /// Whether it is real graphics hardware (not a software rasteriser such as lavapipe).
    pub hardware: bool,
}

/// Lists the wgpu adapters on this machine, without creating a device.
pub fn list_adapters() -> Vec<AdapterSummary> {
    use burn::tensor::wgpu::wgpu;
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                hardware: matches!(
                    info.device_type,
                    wgpu::DeviceType::DiscreteGpu
                        | wgpu::DeviceType::IntegratedGpu
                        | wgpu::DeviceType::VirtualGpu
                ),
                name: info.name,
            }
        })
        .collect()
}

fn cpu(note: &str) -> ComputeDevice {
    ComputeDevice {
        device: Device::flex(),
        backend: Backend::Cpu,
        description: format!("CPU — {note}"),
    }
}

fn wgpu(adapter: &str) -> ComputeDevice {
    ComputeDevice {
        device: Device::wgpu(DeviceKind::DefaultDevice),
        backend: Backend::Wgpu,
        description: format!("GPU — {adapter}"),
    }
}

/// Picks the device for `preference`.
///
/// `Auto` takes wgpu only for a hardware adapter: on a software one (lavapipe, llvmpipe) the CPU
/// backend is many times faster.
pub fn select(preference: DevicePreference) -> ComputeDevice {
    match preference {
        DevicePreference::Cpu => cpu("chosen in the settings"),
        DevicePreference::Gpu => {
            let adapters = list_adapters();
            match adapters.iter().find(|a| a.hardware).or(adapters.first()) {
                Some(a) => wgpu(&a.name),
                None => cpu("GPU asked for, but no GPU adapter found"),
            }
        }
        DevicePreference::Auto => {
            let adapters = list_adapters();
            match adapters.iter().find(|a| a.hardware) {
                Some(a) => wgpu(&a.name),
                None if adapters.is_empty() => cpu("no GPU adapter found"),
                None => cpu("only a software GPU adapter found"),
            }
        }
    }
}
