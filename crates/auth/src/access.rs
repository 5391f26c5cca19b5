//! What a request needs: actions on a resource, in the vocabulary of the Docker token
//! specification's scopes (`repository:<name>:pull,push`, `registry:catalog:*`).

use std::fmt;

use registry_model::RepositoryName;

/// Something a request does to a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and push manifests and tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// Every action, in scope order.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The action's name in a scope: `pull`, `push` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// Parses a scope's action name; `None` for names registryd does not use.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What access is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A repository.
    Repository(RepositoryName),
    /// The list of all repositories (`registry:catalog:*`).
    Catalog,
}

/// Actions a request needs on one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// What is accessed.
    pub resource: Resource,
    /// What is done to it; empty for the catalog, whose scope action is `*`.
    pub actions: Vec<Action>,
}

impl Access {
    /// `actions` on the repository `name`.
    pub fn repository(name: RepositoryName, actions: &[Action]) -> Access {
        Access {
            resource: Resource::Repository(name),
            actions: actions.to_vec(),
        }
    }

    /// The catalog.
    pub fn catalog() -> Access {
        Access {
            resource: Resource::Catalog,
            actions: Vec::new(),
        }
    }

    /// The token specification's scope string: `repository:<name>:<action>,...` or
    /// `registry:catalog:*`.
    pub fn scope(&self) -> String {
        match &self.resource {
            Resource::Catalog => "registry:catalog:*".to_owned(),
            Resource::Repository(name) => {
                let actions: Vec<&str> =
                    self.actions.iter().map(|action| action.as_str()).collect();
                format!("repository:{name}:{}", actions.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_written_as_the_token_spec_says() {
        let name: RepositoryName = "samalba/my-app".parse().expect("name");
        assert_eq!(
            Access::repository(name, &[Action::Pull, Action::Push]).scope(),
            "repository:samalba/my-app:pull,push"
        );
        assert_eq!(Access::catalog().scope(), "registry:catalog:*");
    }

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("*"), None);
    }
}
