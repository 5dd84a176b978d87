//! Checkpoints: a resumable run folder, written periodically and on Ctrl-C / SIGTERM.
//!
//! ```text
//! RUN/                       (at the run's output path, until the run completes)
//!   checkpoint.safetensors   params, adam_m, adam_v f32 [instances, P]; rng u32 [instances, 32];
//!                            steps_done, index u64 [instances]; log_steps u64 [points];
//!                            log_loss f64 [points, instances];
//!                            snapshot_steps u64 [S], snapshot_params f32 [S, instances, P]
//!                            (only when snapshots were taken);
//!                            metadata: format, config (TOML), experiment, kind, done, steps,
//!                            elapsed, and the experiment's profile and restarts when set
//!   config.toml              the run's config
//!   status.json              {"status", "done", "steps", "resume"}
//! ```
//!
//! `tms resume RUN` finishes the run; its weights are bit-identical to an uninterrupted run's.

use anyhow::{bail, Context};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::bytes::{from_le_bytes, le_bytes};
use super::RunFolder;
use crate::config::TrainConfig;
use crate::data::LANES;
use crate::train::{InstanceState, Snapshot, TrainState};

/// File name of the state inside a checkpoint folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// What produced a checkpointed run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// `tms reproduce NAME`: resuming applies the experiment's figures and verdict.
    Experiment,
    /// `tms train CONFIG`.
    Train,
}

impl RunKind {
    /// The name in a checkpoint's metadata.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Experiment => "experiment",
            RunKind::Train => "train",
        }
    }
}

/// A resumable training run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Experiment or config name.
    pub experiment: String,
    /// How the run was started.
    pub kind: RunKind,
    /// The run's config.
    pub config: TrainConfig,
    /// The training state at a block boundary.
    pub state: TrainState,
    /// The experiment's profile (`quick`, `paper`), for its later stages.
    pub profile: Option<String>,
    /// The restarts asked for on the command line, for an experiment's later stages.
    pub restarts: Option<usize>,
}

impl Checkpoint {
    /// Serialise to safetensors bytes (little-endian, on any host).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let st = &self.state;
        let count = st.instances.len();
        let plen = st.instances.first().map_or(0, |i| i.params.len());
        let cat = |f: fn(&InstanceState) -> &Vec<f32>| -> Vec<f32> {
            st.instances
                .iter()
                .flat_map(|i| f(i).iter().copied())
                .collect()
        };
        let params = le_bytes(&cat(|i| &i.params));
        let adam_m = le_bytes(&cat(|i| &i.adam_m));
        let adam_v = le_bytes(&cat(|i| &i.adam_v));
        let rng: Vec<u32> = st.instances.iter().flat_map(|i| i.rng).collect();
        let rng = le_bytes(&rng);
        let steps_done: Vec<u64> = st.instances.iter().map(|i| i.steps_done).collect();
        let steps_done = le_bytes(&steps_done);
        let index: Vec<u64> = st.instances.iter().map(|i| i.index as u64).collect();
        let index = le_bytes(&index);
        let log_steps = le_bytes(&st.log_steps);
        let log_loss: Vec<f64> = st.log_loss.iter().flatten().copied().collect();
        let log_loss = le_bytes(&log_loss);
        let points = st.log_steps.len();
        let snapshot_steps: Vec<u64> = st.snapshots.iter().map(|s| s.step).collect();
        let snapshot_steps = le_bytes(&snapshot_steps);
        let snapshot_params: Vec<f32> = st
            .snapshots
            .iter()
            .flat_map(|s| s.params.iter().flatten().copied())
            .collect();
        let snapshot_params = le_bytes(&snapshot_params);
        fn view<'a>(
            dtype: Dtype,
            shape: Vec<usize>,
            name: &str,
            bytes: &'a [u8],
        ) -> anyhow::Result<TensorView<'a>> {
            TensorView::new(dtype, shape, bytes)
                .with_context(|| format!("checkpoint tensor {name}"))
        }
        let tensors = vec![
            (
                "params",
                view(Dtype::F32, vec![count, plen], "params", &params)?,
            ),
            (
                "adam_m",
                view(Dtype::F32, vec![count, plen], "adam_m", &adam_m)?,
            ),
            (
                "adam_v",
                view(Dtype::F32, vec![count, plen], "adam_v", &adam_v)?,
            ),
            (
                "rng",
                view(Dtype::U32, vec![count, 4 * LANES], "rng", &rng)?,
            ),
            (
                "steps_done",
                view(Dtype::U64, vec![count], "steps_done", &steps_done)?,
            ),
            ("index", view(Dtype::U64, vec![count], "index", &index)?),
            (
                "log_steps",
                view(Dtype::U64, vec![points], "log_steps", &log_steps)?,
            ),
            (
                "log_loss",
                view(Dtype::F64, vec![points, count], "log_loss", &log_loss)?,
            ),
        ];
        let mut tensors = tensors;
        if !st.snapshots.is_empty() {
            let s = st.snapshots.len();
            tensors.push((
                "snapshot_steps",
                view(Dtype::U64, vec![s], "snapshot_steps", &snapshot_steps)?,
            ));
            tensors.push((
                "snapshot_params",
                view(
                    Dtype::F32,
                    vec![s, count, plen],
                    "snapshot_params",
                    &snapshot_params,
                )?,
            ));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "tms-checkpoint/1".to_string());
        if let Some(profile) = &self.profile {
            meta.insert("profile".to_string(), profile.clone());
        }
        if let Some(restarts) = self.restarts {
            meta.insert("restarts".to_string(), restarts.to_string());
        }
        meta.insert("config".to_string(), self.config.to_toml());
        meta.insert("experiment".to_string(), self.experiment.clone());
        meta.insert("kind".to_string(), self.kind.name().to_string());
        meta.insert("done".to_string(), st.done.to_string());
        meta.insert("steps".to_string(), st.steps.to_string());
        meta.insert("elapsed".to_string(), st.elapsed.as_secs_f64().to_string());
        Ok(super::weights::canonical_header(safetensors::serialize(
            tensors,
            &Some(meta),
        )?))
    }

    /// Parse and check checkpoint bytes.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let (st, meta) = parse_file(bytes, "checkpoint")?;
        let get = |k: &str| metadata_value(&meta, k);
        if get("format")? != "tms-checkpoint/1" {
            bail!("unknown checkpoint format {:?}", get("format")?);
        }
        let config = TrainConfig::from_toml(&get("config")?, "checkpoint config")?;
        let kind = match get("kind")?.as_str() {
            "experiment" => RunKind::Experiment,
            "train" => RunKind::Train,
            other => bail!("unknown run kind {other:?} in the checkpoint"),
        };
        let done: u64 = get("done")?.parse().context("checkpoint `done`")?;
        let steps: u64 = get("steps")?.parse().context("checkpoint `steps`")?;
        let elapsed: f64 = get("elapsed")?.parse().context("checkpoint `elapsed`")?;
        // Up to about 30,000 years: a duration every later sum can hold.
        if !(elapsed.is_finite() && elapsed < 1e12) {
            bail!("checkpoint `elapsed` is not a duration: {elapsed}");
        }

        let tensor =
            |name: &str, dtype: Dtype, rank: usize| -> anyhow::Result<(Vec<usize>, Vec<u8>)> {
                let t = st
                    .tensor(name)
                    .map_err(|_| anyhow::anyhow!("the checkpoint lacks tensor `{name}`"))?;
                if t.dtype() != dtype || t.shape().len() != rank {
                    bail!(
                    "checkpoint tensor `{name}` is {:?} {:?}; expected {dtype:?} of rank {rank}",
                    t.dtype(),
                    t.shape()
                );
                }
                Ok((t.shape().to_vec(), t.data().to_vec()))
            };
        let f32s = |b: &[u8]| -> Vec<f32> { from_le_bytes(b).collect() };
        let u64s = |b: &[u8]| -> Vec<u64> { from_le_bytes(b).collect() };
        let (pshape, params) = tensor("params", Dtype::F32, 2)?;
        let (count, plen) = (pshape[0], pshape[1]);
        let check = |name: &str, shape: &[usize], expect: &[usize]| -> anyhow::Result<()> {
            if shape != expect {
                bail!("checkpoint tensor `{name}` has shape {shape:?}; expected {expect:?}");
            }
            Ok(())
        };
        let (s, adam_m) = tensor("adam_m", Dtype::F32, 2)?;
        check("adam_m", &s, &pshape)?;
        let (s, adam_v) = tensor("adam_v", Dtype::F32, 2)?;
        check("adam_v", &s, &pshape)?;
        let (s, rng) = tensor("rng", Dtype::U32, 2)?;
        check("rng", &s, &[count, 4 * LANES])?;
        let (s, steps_done) = tensor("steps_done", Dtype::U64, 1)?;
        check("steps_done", &s, &[count])?;
        let (s, index) = tensor("index", Dtype::U64, 1)?;
        check("index", &s, &[count])?;
        let (s, log_steps) = tensor("log_steps", Dtype::U64, 1)?;
        let points = s[0];
        let (s, log_loss) = tensor("log_loss", Dtype::F64, 2)?;
        check("log_loss", &s, &[points, count])?;

        let (params, adam_m, adam_v) = (f32s(&params), f32s(&adam_m), f32s(&adam_v));
        let rng: Vec<u32> = from_le_bytes(&rng).collect();
        let (steps_done, index) = (u64s(&steps_done), u64s(&index));
        let instances = (0..count)
            .map(|k| InstanceState {
                index: index[k] as usize,
                steps_done: steps_done[k],
                params: params[k * plen..(k + 1) * plen].to_vec(),
                adam_m: adam_m[k * plen..(k + 1) * plen].to_vec(),
                adam_v: adam_v[k * plen..(k + 1) * plen].to_vec(),
                rng: rng[k * 4 * LANES..(k + 1) * 4 * LANES]
                    .try_into()
                    .expect("rng rows have 32 words"),
            })
            .collect();
        let log_loss: Vec<f64> = from_le_bytes(&log_loss).collect();
        let snapshots = match st.tensor("snapshot_steps") {
            Err(_) => Vec::new(),
            Ok(_) => {
                let (s, snapshot_steps) = tensor("snapshot_steps", Dtype::U64, 1)?;
                let taken = s[0];
                let (s, values) = tensor("snapshot_params", Dtype::F32, 3)?;
                check("snapshot_params", &s, &[taken, count, plen])?;
                let values = f32s(&values);
                u64s(&snapshot_steps)
                    .into_iter()
                    .enumerate()
                    .map(|(j, step)| Snapshot {
                        step,
                        params: (0..count)
                            .map(|k| {
                                let at = (j * count + k) * plen;
                                values[at..at + plen].to_vec()
                            })
                            .collect(),
                    })
                    .collect()
            }
        };
        let restarts = match meta.get("restarts") {
            Some(r) => Some(r.parse().context("checkpoint `restarts`")?),
            None => None,
        };
        Ok(Checkpoint {
            experiment: get("experiment")?,
            kind,
            config,
            profile: meta.get("profile").cloned(),
            restarts,
            state: TrainState {
                done,
                steps,
                instances,
                log_steps: u64s(&log_steps),
                log_loss: log_loss.chunks(count.max(1)).map(<[f64]>::to_vec).collect(),
                elapsed: Duration::from_secs_f64(elapsed.max(0.0)),
                snapshots,
            },
        })
    }

    /// Write a checkpoint folder at `dir` (atomically, replacing an earlier checkpoint).
    pub fn write(&self, dir: &Path, status: &str, force: bool) -> anyhow::Result<()> {
        let folder = RunFolder::create(dir, force)?;
        folder.write(CHECKPOINT_FILE, &self.to_bytes()?)?;
        folder.write("config.toml", self.config.to_toml().as_bytes())?;
        let status = serde_json::json!({
            "status": status,
            "done": self.state.done,
            "steps": self.state.steps,
            "resume": format!("tms resume {}", dir.display()),
        });
        folder.write(
            "status.json",
            serde_json::to_string_pretty(&status)?.as_bytes(),
        )?;
        folder.commit()?;
        Ok(())
    }

    /// Read the checkpoint of a checkpoint folder.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        if !path.exists() {
            if dir.join("metrics.json").exists() {
                bail!(
                    "{} is a finished run; there is nothing to resume",
                    dir.display()
                );
            }
            bail!(
                "{} has no {CHECKPOINT_FILE}; it is not a resumable run",
                dir.display()
            );
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("{}", path.display()))
    }
}

/// The tensors and metadata of a checkpoint file (`what` names the kind in errors).
pub(crate) fn parse_file<'a>(
    bytes: &'a [u8],
    what: &str,
) -> anyhow::Result<(SafeTensors<'a>, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("not a valid {what} file ({e})"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("not a valid {what} file ({e})"))?;
    Ok((st, header.metadata().clone().unwrap_or_default()))
}

/// A checkpoint's metadata entry `key`, or an error naming it.
pub(crate) fn metadata_value(meta: &HashMap<String, String>, key: &str) -> anyhow::Result<String> {
    meta.get(key)
        .cloned()
        .with_context(|| format!("checkpoint metadata lacks `{key}`"))
}

/// File name of a shard's final state inside its run folder (`--shard` or `--instances`).
pub const SHARD_FILE: &str = "shard.safetensors";

/// Join the final states of the shards of one run into the final state of the whole run, so
/// that finishing it (`tms merge`) writes what a single machine would have written. Each shard
/// comes with a name for messages (its folder). Refused, naming the shard: a shard of another
/// run (config, experiment, profile or restarts differ), an unfinished one, two shards holding
/// the same instance, instances in no shard, a state that does not match its own range.
pub fn merge_shards(shards: &[(String, Checkpoint)]) -> anyhow::Result<Checkpoint> {
    let Some((first_name, first)) = shards.first() else {
        bail!("no shards to merge");
    };
    let whole = |c: &Checkpoint| {
        let mut config = c.config.clone();
        config.train.only_instances = None;
        config
    };
    let config = whole(first);
    let total = config
        .resolve()
        .map_err(|e| anyhow::anyhow!("{first_name}: its config: {e}"))?
        .len();
    let mut parts = Vec::new();
    for (name, c) in shards {
        let Some(range) = c.config.train.only_instances else {
            bail!("{name} holds the whole run (all {total} instances), not a shard of it");
        };
        if range.from >= range.to || range.to > total {
            bail!(
                "{name} is damaged: it claims instances {}..{} of a run of {total}",
                range.from,
                range.to
            );
        }
        if whole(c) != config {
            let (a, b) = (config.to_toml(), whole(c).to_toml());
            let differs = a
                .lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map_or(String::new(), |(x, y)| format!(" (`{y}` against `{x}`)"));
            bail!(
                "{name} is a shard of another run: its config differs from {first_name}'s{differs}"
            );
        }
        if (&c.experiment, c.kind, &c.profile, c.restarts)
            != (
                &first.experiment,
                first.kind,
                &first.profile,
                first.restarts,
            )
        {
            let describe = |c: &Checkpoint| {
                format!(
                    "{} {} (profile {}, restarts {})",
                    c.kind.name(),
                    c.experiment,
                    c.profile.as_deref().unwrap_or("none"),
                    c.restarts.map_or("default".to_string(), |r| r.to_string())
                )
            };
            bail!(
                "{name} is a shard of another run: {} against {first_name}'s {}",
                describe(c),
                describe(first)
            );
        }
        let st = &c.state;
        if st.steps != config.train.steps || st.log_loss.len() != st.log_steps.len() {
            bail!(
                "{name} is damaged: its state does not match its config's {} steps",
                config.train.steps
            );
        }
        if st.done != st.steps {
            bail!(
                "{name} is unfinished (step {} of {}); finish it with `tms resume {name}` first",
                st.done,
                st.steps
            );
        }
        let indices_match = st.instances.len() == range.to - range.from
            && st
                .instances
                .iter()
                .zip(range.from..range.to)
                .all(|(i, k)| i.index == k);
        if !indices_match
            || st.log_loss.iter().any(|l| l.len() != st.instances.len())
            || st
                .snapshots
                .iter()
                .any(|s| s.params.len() != st.instances.len())
        {
            bail!(
                "{name} is damaged: its state does not hold instances {}..{} it claims",
                range.from,
                range.to
            );
        }
        if st.log_steps != first.state.log_steps
            || st
                .snapshots
                .iter()
                .map(|s| s.step)
                .ne(first.state.snapshots.iter().map(|s| s.step))
        {
            bail!("{name} and {first_name} disagree on the steps of the loss curve or snapshots: one of them is damaged");
        }
        parts.push((range, name, st));
    }
    parts.sort_by_key(|(r, _, _)| (r.from, r.to));
    let mut next = 0;
    for (k, (r, name, _)) in parts.iter().enumerate() {
        if r.from < next {
            let (_, other, _) = &parts[k - 1];
            bail!(
                "{other} and {name} both hold instances {}..{}: merge each instance once",
                r.from,
                next.min(r.to)
            );
        }
        if r.from > next {
            bail!(
                "instances {next}..{} are in no shard: a shard is missing",
                r.from
            );
        }
        next = r.to;
    }
    if next != total {
        bail!("instances {next}..{total} are in no shard: a shard is missing");
    }
    let states: Vec<&TrainState> = parts.iter().map(|(_, _, st)| *st).collect();
    let joined = |f: &dyn Fn(&TrainState, usize) -> Vec<f64>, points: usize| -> Vec<Vec<f64>> {
        (0..points)
            .map(|p| states.iter().flat_map(|st| f(st, p)).collect())
            .collect()
    };
    let first_state = &first.state;
    let state = TrainState {
        done: first_state.steps,
        steps: first_state.steps,
        instances: states
            .iter()
            .flat_map(|st| st.instances.iter().cloned())
            .collect(),
        log_steps: first_state.log_steps.clone(),
        log_loss: joined(&|st, p| st.log_loss[p].clone(), first_state.log_steps.len()),
        // The longest shard: the wall time had they run side by side.
        elapsed: states.iter().map(|st| st.elapsed).max().unwrap_or_default(),
        snapshots: first_state
            .snapshots
            .iter()
            .enumerate()
            .map(|(p, snap)| Snapshot {
                step: snap.step,
                params: states
                    .iter()
                    .flat_map(|st| st.snapshots[p].params.iter().cloned())
                    .collect(),
            })
            .collect(),
    };
    Ok(Checkpoint {
        experiment: first.experiment.clone(),
        kind: first.kind,
        config,
        state,
        profile: first.profile.clone(),
        restarts: first.restarts,
    })
}

/// Whether `dir` holds a checkpoint (an unfinished run).
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(CHECKPOINT_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, TrainSettings};
    use crate::model::ModelKind;

    #[test]
    fn checkpoint_round_trips_exactly() {
        let config = TrainConfig {
            name: "t".into(),
            model: ModelConfig {
                kind: ModelKind::ReluOutput,
                features: 2,
                hidden: 1,
            },
            train: TrainSettings::default(),
            data: Default::default(),
            sweep: None,
            instances: vec![],
        };
        let inst = |k: usize| InstanceState {
            index: k,
            steps_done: 50,
            params: vec![k as f32, 0.5, -1.0, 2.0],
            adam_m: vec![0.1; 4],
            adam_v: vec![0.2; 4],
            rng: [k as u32 + 7; 32],
        };
        let ck = Checkpoint {
            experiment: "t".into(),
            kind: RunKind::Train,
            config,
            profile: Some("quick".into()),
            restarts: Some(3),
            state: TrainState {
                done: 50,
                steps: 100,
                instances: vec![inst(3), inst(4)],
                log_steps: vec![25, 50],
                log_loss: vec![vec![1.0, 2.0], vec![0.5, 0.25]],
                elapsed: Duration::from_millis(1500),
                snapshots: vec![
                    Snapshot {
                        step: 0,
                        params: vec![vec![1.0; 4], vec![2.0; 4]],
                    },
                    Snapshot {
                        step: 10,
                        params: vec![vec![3.0; 4], vec![-4.0; 4]],
                    },
                ],
            },
        };
        let back = Checkpoint::from_bytes(&ck.to_bytes().unwrap()).unwrap();
        assert_eq!(back.state, ck.state);
        assert_eq!(back.config, ck.config);
        assert_eq!(back.kind, RunKind::Train);
        assert_eq!(
            (back.profile, back.restarts),
            (Some("quick".into()), Some(3))
        );
        assert!(Checkpoint::from_bytes(b"junk").is_err());
    }
}
