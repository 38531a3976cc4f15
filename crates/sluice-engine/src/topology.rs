//! Turning a validated [`Config`] into a runnable [`Pipeline`]: every source gets one route
//! per sink it reaches, with the transform chains along the way.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_config::Config;
use sluice_core::CheckpointStore;

use crate::pipeline::{Pipeline, Route, RunOptions, SinkSpec, SourceSpec};
use crate::registry::{build_sink, build_source};
use crate::transform::Transform;

/// Build the pipeline for `config`.
pub fn build(config: &Config, store: Arc<dyn CheckpointStore>, options: RunOptions) -> Pipeline {
    let transforms: BTreeMap<&str, Arc<Transform>> = config
        .transforms
        .iter()
        .map(|(name, t)| (name.as_str(), Arc::new(Transform::new(&t.kind))))
        .collect();
    let sink_names: Vec<&String> = config.sinks.keys().collect();
    let sinks = config
        .sinks
        .iter()
        .map(|(name, s)| SinkSpec {
            name: name.clone(),
            sink: build_sink(&s.kind),
            batch: s.batch,
        })
        .collect();
    let sources = config
        .sources
        .iter()
        .map(|(name, s)| {
            let routes = sink_names
                .iter()
                .enumerate()
                .filter_map(|(index, sink)| {
                    let chains = chains(config, &transforms, name, &config.sinks[*sink].inputs);
                    (!chains.is_empty()).then_some(Route {
                        sink: index,
                        chains,
                    })
                })
                .collect();
            SourceSpec {
                name: name.clone(),
                source: build_source(name, s),
                routes,
            }
        })
        .collect();
    Pipeline {
        sources,
        sinks,
        store,
        options,
    }
}

/// Every transform chain from `source` to a consumer with `inputs`, in source-to-sink order.
fn chains(
    config: &Config,
    transforms: &BTreeMap<&str, Arc<Transform>>,
    source: &str,
    inputs: &[String],
) -> Vec<Vec<Arc<Transform>>> {
    let mut out = Vec::new();
    for input in inputs {
        if input == source {
            out.push(Vec::new());
        } else if let (Some(t), Some(tc)) =
            (transforms.get(input.as_str()), config.transforms.get(input))
        {
            for mut chain in chains(config, transforms, source, &tc.inputs) {
                chain.push(t.clone());
                out.push(chain);
            }
        }
    }
    out
}
