//! What a refused setting looks like: the variable (or flag) it came from, the value unless it
//! is secret, and what was expected. clap's own messages name flags only, and most settings
//! come from the environment.

use std::error::Error as _;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, CommandFactory};

use super::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {help}")]
    Missing { name: String, help: String },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    /// Anything else clap refuses (an unknown flag), and the text of `--help` and `--version`.
    #[error("{0}")]
    Usage(clap::Error),
}

/// Which name a message gives a setting.
#[derive(Clone, Copy)]
pub(super) enum Names {
    /// The flag if the command line has it, else the environment variable.
    AsGiven,
    /// The environment variable: every value came from one.
    Variables,
}

impl ConfigError {
    /// `err` told in terms of the setting it is about, for a command line `args`.
    pub(super) fn new(err: clap::Error, args: &[OsString], names: Names) -> ConfigError {
        let command = Config::command();
        let Some(arg) = culprit(&err).and_then(|long| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
        }) else {
            return ConfigError::Usage(err);
        };
        let name = name(arg, args, names);
        match err.kind() {
            ErrorKind::MissingRequiredArgument => ConfigError::Missing {
                name,
                help: arg.get_help().map(ToString::to_string).unwrap_or_default(),
            },
            ErrorKind::ValueValidation | ErrorKind::InvalidValue => ConfigError::Invalid {
                name,
                value: if arg.is_hide_env_values_set() {
                    // A connection string may hold a password, and a secret is secret.
                    "…".into()
                } else {
                    context_string(&err, ContextKind::InvalidValue).unwrap_or_default()
                },
                reason: reason(&err),
            },
            _ => ConfigError::Usage(err),
        }
    }

    /// Whether this is `--help` or `--version` rather than a refusal.
    pub fn is_information(&self) -> bool {
        matches!(self, ConfigError::Usage(err)
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion))
    }
}

/// The long flag of the setting an error is about ("--keepalive-secs <SECS>" names it).
fn culprit(err: &clap::Error) -> Option<String> {
    let described = match err.get(ContextKind::InvalidArg)? {
        ContextValue::String(arg) => arg.clone(),
        ContextValue::Strings(args) => args.first()?.clone(),
        _ => return None,
    };
    let flag = described.split(' ').next()?;
    Some(flag.strip_prefix("--")?.to_owned())
}

fn name(arg: &Arg, args: &[OsString], names: Names) -> String {
    let long = format!("--{}", arg.get_long().unwrap_or_default());
    let on_command_line = args.iter().filter_map(|a| a.to_str()).any(|a| {
        a == long
            || a.strip_prefix(long.as_str())
                .is_some_and(|r| r.starts_with('='))
    });
    match (names, arg.get_env().and_then(|e| e.to_str())) {
        (Names::AsGiven, _) if on_command_line => long,
        (_, Some(env)) => env.to_owned(),
        (_, None) => long,
    }
}

fn context_string(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(value) => Some(value.clone()),
        _ => None,
    }
}

/// What the parser expected: its own words, or the values clap offers.
fn reason(err: &clap::Error) -> String {
    if let Some(source) = err.source() {
        return source.to_string();
    }
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
        _ => "not a valid value".into(),
    }
}
