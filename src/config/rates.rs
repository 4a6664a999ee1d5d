//! Learning rates per layer group ("discriminative rates"): the stage's rate for every thawed
//! group, a geometric range from the lowest thawed group to the head (fastai's `slice`), or a
//! factor per group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How a stage's rate is shared out among its thawed layer groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LayerRates {
    /// Every thawed group trains at the stage's rate.
    #[default]
    Same,
    /// `low` for the lowest thawed group, `high` for the head, geometric in between (the stage's
    /// own rate is not used).
    Range {
        /// The lowest thawed group's rate.
        low: f64,
        /// The head's rate.
        high: f64,
    },
    /// The stage's rate times a factor per group (a group not named: 1; 0 holds it still).
    Factors {
        /// Factor by group name.
        factors: BTreeMap<String, f64>,
    },
}

impl LayerRates {
    /// Each group's rate in a stage whose rate is `base`; 0 for a frozen group.
    pub fn resolve(&self, base: f64, frozen: &[bool], names: &[String]) -> Vec<f64> {
        let thawed: Vec<usize> = (0..frozen.len()).filter(|&i| !frozen[i]).collect();
        let mut rates = vec![0.0; frozen.len()];
        for (position, &group) in thawed.iter().enumerate() {
            rates[group] = match self {
                Self::Same => base,
                Self::Range { low, high } => {
                    let steps = thawed.len().saturating_sub(1);
                    if steps == 0 {
                        *high
                    } else {
                        let t = position as f64 / steps as f64;
                        low * (high / low).powf(t)
                    }
                }
                Self::Factors { factors } => {
                    let name = names.get(group).map(String::as_str).unwrap_or("");
                    base * factors.get(name).copied().unwrap_or(1.0)
                }
            };
        }
        rates
    }

    /// `LOW:HIGH`, as `--lr-range` takes it.
    pub fn parse_range(text: &str) -> Result<Self, String> {
        let (low, high) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not LOW:HIGH (for example 1e-5:1e-3)"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{s}` in `{text}` is not a number"))
        };
        let range = Self::Range {
            low: number(low)?,
            high: number(high)?,
        };
        range.check("--lr-range").map_err(|e| e.reason)?;
        Ok(range)
    }

    /// `GROUP=FACTOR,…`, as `--lr-factors` takes it.
    pub fn parse_factors(text: &str) -> Result<Self, String> {
        let mut factors = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, factor) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not GROUP=FACTOR (for example head=1)"))?;
            let factor: f64 = factor
                .trim()
                .parse()
                .map_err(|_| format!("`{factor}` in `{item}` is not a number"))?;
            factors.insert(name.trim().to_string(), factor);
        }
        let rates = Self::Factors { factors };
        rates.check("--lr-factors").map_err(|e| e.reason)?;
        Ok(rates)
    }

    /// Refuses a range that is not positive and rising, and negative factors.
    pub fn check(&self, field: &'static str) -> Result<(), ConfigError> {
        let bad = |reason: String| Err(ConfigError { field, reason });
        match self {
            Self::Same => Ok(()),
            Self::Range { low, high } => {
                if !(low.is_finite() && high.is_finite() && *low > 0.0 && low <= high) {
                    return bad(format!(
                        "a range needs 0 < low ≤ high, got {low:e} to {high:e}"
                    ));
                }
                Ok(())
            }
            Self::Factors { factors } => {
                match factors.iter().find(|(_, f)| !(f.is_finite() && **f >= 0.0)) {
                    Some((name, f)) => bad(format!(
                        "the factor of `{name}` must be zero or positive, got {f}"
                    )),
                    None => Ok(()),
                }
            }
        }
    }

    /// For people.
    pub fn describe(&self) -> String {
        match self {
            Self::Same => "the same rate for every thawed group".into(),
            Self::Range { low, high } => {
                format!("{low:e} (lowest thawed group) to {high:e} (head)")
            }
            Self::Factors { factors } => factors
                .iter()
                .map(|(name, f)| format!("{name} ×{f}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        let mut names: Vec<String> = (0..n - 1).map(|i| format!("block{i}")).collect();
        names.push("head".into());
        names
    }

    #[test]
    fn a_range_runs_geometrically_from_the_lowest_thawed_group_to_the_head() {
        let frozen = [true, true, false, false, false];
        let rates = LayerRates::parse_range("1e-5:1e-3")
            .unwrap()
            .resolve(3e-3, &frozen, &names(5));
        assert_eq!(&rates[..2], [0.0, 0.0]);
        assert!((rates[2] - 1e-5).abs() < 1e-12);
        assert!((rates[3] - 1e-4).abs() < 1e-12);
        assert!((rates[4] - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn factors_scale_the_stage_rate_and_default_to_one() {
        let rates = LayerRates::parse_factors("block1=0.1, head=2, block0=0")
            .unwrap()
            .resolve(1e-3, &[false, false, true, false], &names(4));
        assert_eq!(rates, [0.0, 1e-3 * 0.1, 0.0, 2e-3]);
        let same = LayerRates::Same.resolve(1e-3, &[true, false], &names(2));
        assert_eq!(same, [0.0, 1e-3]);
    }

    #[test]
    fn bad_ranges_and_factors_say_what_is_wrong() {
        for bad in ["1e-3", "1e-3:1e-5", "0:1", "x:1"] {
            assert!(LayerRates::parse_range(bad).is_err(), "{bad}");
        }
        for bad in ["head", "head=-1", "head=x"] {
            assert!(LayerRates::parse_factors(bad).is_err(), "{bad}");
        }
        let json = r#"{"kind": "range", "low": 1e-5, "high": 1e-3}"#;
        let parsed: LayerRates = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, LayerRates::parse_range("1e-5:1e-3").unwrap());
    }
}
