//! Reading the settings: from the command line and the environment, from arguments alone, or
//! through a lookup (tests); then whether they agree with each other.

use std::ffi::OsString;

use clap::{Command, CommandFactory, FromArgMatches};

use super::error::{ConfigError, Names};
use super::Config;

impl Config {
    /// Reads the configuration from the command line and the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let args: Vec<OsString> = std::env::args_os().collect();
        // Help shows each setting's variable but not its value: some are secret. A variable set
        // to nothing counts as unset (clap would take the empty value).
        let command = Config::command().mut_args(|arg| {
            let empty = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty());
            let arg = arg.hide_env_values(true);
            if empty {
                arg.env(None)
            } else {
                arg
            }
        });
        parse(command, &args, Names::AsGiven)
    }

    /// Reads the configuration from `args` (the program's name first) alone: the process
    /// environment is not consulted.
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        parse(without_environment(), &args, Names::AsGiven)
    }

    /// Reads the configuration through `lookup`, which returns an environment variable's value
    /// if it is set (an empty value counts as unset). Tests pass a closure instead of mutating
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut args = vec![OsString::from("pgsse")];
        for arg in Config::command().get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let value = env.to_str().and_then(&lookup);
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                args.push(format!("--{long}={}", value.trim()).into());
            }
        }
        // Messages name the variables the values came from, not the flags made of them.
        parse(without_environment(), &args, Names::Variables)
    }
}

/// The gateway's command line with no environment variables behind its flags.
fn without_environment() -> Command {
    Config::command().mut_args(|arg| arg.env(None))
}

/// Parses `args` with `command`: the values, then whether they agree with each other.
fn parse(command: Command, args: &[OsString], names: Names) -> Result<Config, ConfigError> {
    let named = |err| ConfigError::new(err, args, names);
    let mut matches = command.try_get_matches_from(args).map_err(named)?;
    consistent(Config::from_arg_matches_mut(&mut matches).map_err(named)?)
}

/// Whether settings that are valid each on its own agree with each other.
fn consistent(config: Config) -> Result<Config, ConfigError> {
    both_tls_files(&config)?;
    one_jwks_source(&config)?;
    claims_need_authentication(&config)?;
    demo_tokens_need_a_secret(&config)?;
    Ok(config)
}

/// HTTPS needs a certificate and its key.
fn both_tls_files(config: &Config) -> Result<(), ConfigError> {
    let (name, missing) = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(_), None) => ("TLS_CERT_FILE", "TLS_KEY_FILE"),
        (None, Some(_)) => ("TLS_KEY_FILE", "TLS_CERT_FILE"),
        _ => return Ok(()),
    };
    Err(ConfigError::Invalid {
        name: name.into(),
        value: "…".into(),
        reason: format!("HTTPS needs {missing} as well"),
    })
}

/// The identity provider's keys come from one place.
fn one_jwks_source(config: &Config) -> Result<(), ConfigError> {
    match (&config.auth_jwks_url, &config.auth_jwks_file) {
        (Some(_), Some(path)) => Err(ConfigError::Invalid {
            name: "AUTH_JWKS_FILE".into(),
            value: path.display().to_string(),
            reason: "set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both".into(),
        }),
        _ => Ok(()),
    }
}

/// An issuer or audience to check means nothing without tokens to check.
fn claims_need_authentication(config: &Config) -> Result<(), ConfigError> {
    let auth_on = config.auth_secret.is_some() || config.jwks().is_some();
    for (name, value) in [
        ("AUTH_ISSUER", &config.auth_issuer),
        ("AUTH_AUDIENCE", &config.auth_audience),
    ] {
        if let (Some(value), false) = (value, auth_on) {
            return Err(ConfigError::Invalid {
                name: name.into(),
                value: value.clone(),
                reason: "authentication is off: set AUTH_JWT_SECRET, AUTH_JWKS_URL or \
                         AUTH_JWKS_FILE"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Demo tokens are signed with AUTH_JWT_SECRET.
fn demo_tokens_need_a_secret(config: &Config) -> Result<(), ConfigError> {
    if config.demo_tokens && config.auth_secret.is_none() {
        return Err(ConfigError::Invalid {
            name: "DEMO_TOKENS".into(),
            value: "1".into(),
            reason: "demo tokens need AUTH_JWT_SECRET to sign them".into(),
        });
    }
    Ok(())
}
