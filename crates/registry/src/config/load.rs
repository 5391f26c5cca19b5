//! The loading pipeline: YAML text to a checked [`Config`], with warnings for what it ignored.

use std::collections::HashMap;
use std::path::Path;

use super::suggestions::unknown_key_warning;
use super::tree::{Node, Origin};
use super::{
    AuthConfig, BlobDescriptorCache, Config, ConfigError, IndexPlatforms, LoadedConfig,
    ValidationConfig, convert, env, schema, tree,
};

/// The whole pipeline: YAML -> tree -> environment overrides -> registry:2's cross-key rules ->
/// JSON (each scalar read as its key's type) -> typed `Config` -> checks that span keys.
pub(super) fn load_document(
    yaml: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadedConfig, ConfigError> {
    let parsed = tree::parse(yaml, None).map_err(|error| ConfigError::Syntax {
        file: file.map(Path::to_owned),
        line: error.line,
        column: error.column,
        message: error.message,
    })?;
    let mut warnings = parsed.warnings;
    let mut root = parsed.root;
    match &root.value {
        tree::Value::Map(_) => {}
        tree::Value::Null => root = Node::map(root.origin),
        _ => {
            let (line, column) = match root.origin {
                Origin::File { line, column } => (line, column),
                Origin::Env(_) => (0, 0),
            };
            return Err(ConfigError::Syntax {
                file: file.map(Path::to_owned),
                line,
                column,
                message:
                    "expected a map of keys such as version, storage and http at the top level"
                        .to_owned(),
            });
        }
    }

    convert::expand_variant_names(&mut root, &schema::ROOT);
    let from_env = env::apply(&mut root, &schema::ROOT, env, &mut warnings)?;
    convert::apply_compatibility_rules(&mut root, &mut warnings)?;
    let converted = convert::to_json(&root, &schema::ROOT, &mut warnings)?;
    let origins = converted.origins;

    let mut unknown = Vec::new();
    let typed: Result<Config, _> = serde_path_to_error::deserialize(
        serde_ignored::Deserializer::new(&converted.json, &mut |path: serde_ignored::Path<'_>| {
            unknown.push(ignored_path(&path))
        }),
    );
    // The schema step let through only values of the right kinds, so what fails here is a rule
    // of the typed sections themselves (one storage driver, a duration's syntax), whose message
    // is ours.
    let config = typed.map_err(|error| {
        let path = error_path(error.path());
        ConfigError::Invalid {
            origin: origins.get(&path).map(ToString::to_string),
            key: if path.is_empty() {
                "(top level)".to_owned()
            } else {
                path
            },
            message: error.into_inner().to_string(),
        }
    })?;
    for path in unknown {
        warnings.push(unknown_key_warning(&path, origins.get(&path)));
    }

    check(&config, &origins)?;
    warnings.extend(validation_warnings(&config.validation, &origins));
    if config.storage.cache.blobdescriptor == Some(BlobDescriptorCache::Redis) {
        let key = "storage.cache.blobdescriptor";
        let at = origins
            .get(key)
            .map(|origin| format!(" ({origin})"))
            .unwrap_or_default();
        warnings.push(format!(
            "config key {key}{at} is redis, which registryd does not support; blob sizes are cached in this process's memory instead (blobdescriptorsize entries)"
        ));
    }
    Ok(LoadedConfig {
        config,
        warnings,
        from_env,
    })
}

/// What deserves a word in the `validation` section: the deprecated `enabled`, which does not
/// do what its name says, and a platform list that lists nothing.
pub(super) fn validation_warnings(
    validation: &ValidationConfig,
    origins: &HashMap<String, Origin>,
) -> Vec<String> {
    let at = |path: &str| {
        origins
            .get(path)
            .map(|origin| format!(" ({origin})"))
            .unwrap_or_default()
    };
    let mut warnings = Vec::new();
    match validation.enabled {
        Some(true) => warnings.push(format!(
            "config key validation.enabled{} is deprecated; validation is on unless validation.disabled is true, and enabled: true keeps it on even then (as in registry:2)",
            at("validation.enabled")
        )),
        Some(false) => warnings.push(format!(
            "config key validation.enabled{} is deprecated and false does not turn validation off (as in registry:2); use validation.disabled: true",
            at("validation.enabled")
        )),
        None => {}
    }
    let indexes = &validation.manifests.indexes;
    if validation.is_enabled()
        && indexes.platforms == IndexPlatforms::List
        && indexes.platformlist.is_empty()
    {
        warnings.push(format!(
            "config key validation.manifests.indexes.platforms{} is list but platformlist is empty, so every child of an index must exist (as in registry:2); list the platforms to check in validation.manifests.indexes.platformlist",
            at("validation.manifests.indexes.platforms")
        ));
    }
    warnings
}

/// Checks that span several keys, after typing.
pub(super) fn check(config: &Config, origins: &HashMap<String, Origin>) -> Result<(), ConfigError> {
    let origin = |path: &str| origins.get(path).map(ToString::to_string);
    if config.version != "0.1" {
        return Err(ConfigError::Invalid {
            key: "version".to_owned(),
            origin: origin("version"),
            message: format!(
                "registryd reads version 0.1 configuration files, got {:?}; set version: 0.1",
                config.version
            ),
        });
    }
    if let Some(AuthConfig::Token(token)) = &config.auth
        && token.rootcertbundle.is_none()
        && token.jwks.is_none()
    {
        return Err(ConfigError::Invalid {
            key: "auth.token.rootcertbundle".to_owned(),
            origin: None,
            message: "required unless auth.token.jwks is set; point it at the certificates that sign your tokens (REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE)".to_owned(),
        });
    }
    if let Err(error) = config.validation.manifest_validation() {
        let key = format!("validation.manifests.urls.{}[{}]", error.list, error.index);
        return Err(ConfigError::Invalid {
            origin: origin(&key),
            key,
            message: format!(
                "not a valid regular expression ({}); write it in Go's regexp syntax, as registry:2 reads it",
                error.message
            ),
        });
    }
    for (index, rule) in config.access.iter().enumerate() {
        let lists = [
            (
                "users",
                rule.users.is_empty(),
                "a user name, anonymous or \"*\"",
            ),
            (
                "repositories",
                rule.repositories.is_empty(),
                "a repository name or a pattern such as team/*",
            ),
            (
                "actions",
                rule.actions.is_empty(),
                "pull, push, delete or \"*\"",
            ),
        ];
        if let Some((name, _, example)) = lists.into_iter().find(|(_, empty, _)| *empty) {
            let key = format!("auth.access[{index}].{name}");
            return Err(ConfigError::Invalid {
                origin: origin(&key),
                key,
                message: format!(
                    "an empty list matches nothing, so the rule grants nothing; list at least one ({example}) or remove the rule"
                ),
            });
        }
    }
    Ok(())
}

pub(super) fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `storage.filesystem.rootdirectory`, `http.tls.clientcas[0]`.
pub(super) fn error_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => out = join_path(&out, key),
            serde_path_to_error::Segment::Unknown => out = join_path(&out, "?"),
        }
    }
    out
}

pub(super) fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        serde_ignored::Path::Map { parent, key } => join_path(&ignored_path(parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}
