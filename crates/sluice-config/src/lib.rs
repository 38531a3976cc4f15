//! sluice configuration: the model, parsing of TOML and YAML, `${VAR}` substitution, and
//! validation without I/O.
//!
//! A config names `sources`, `transforms` and `sinks`, each with a `type`; transforms and
//! sinks list their `inputs`. Every error names the file, line, column and field path, and
//! ends with a hint when there is one:
//!
//! ```text
//! invalid config sluice.toml:9:1 at `sinks.out.pth`: unknown field `pth` (hint: did you mean `path`? valid fields: path)
//! ```
//!
//! Invariants: unknown keys are errors (`deny_unknown_fields` everywhere); defaults are named
//! constants in [`model`]; relative paths are resolved against the config file's directory;
//! secrets use [`Secret`] and never print.

mod de;
mod env;
mod error;
mod load;
pub mod model;
mod node;
mod secret;

pub use error::{ConfigError, Location};
pub use load::{Format, SINK_TYPES, SOURCE_TYPES, TRANSFORM_TYPES, load, parse_str, reaches};
pub use model::*;
pub use secret::{Secret, redact_url};
