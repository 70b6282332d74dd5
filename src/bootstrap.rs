//! First start: an empty data directory gets one organization and its owner, nothing else.

use crate::config::Bootstrap;
use crate::password;
use crate::store::{NewUser, Store, StoreError};

/// The owner created on first start, with the initial password to print once.
pub struct FirstOwner {
    pub organization: String,
    pub login: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
}

/// Creates the organization and its owner when the store is empty; `None` otherwise.
pub fn bootstrap(store: &Store, config: &Bootstrap) -> Result<Option<FirstOwner>, BootstrapError> {
    if !store.is_empty()? {
        // A store made before operators existed: its first owner becomes one.
        if store.operators()?.is_empty()
            && let Some(owner) = store.user_by_login(&config.owner)?
        {
            store.set_operator(owner.id, true)?;
        }
        return Ok(None);
    }
    let initial = password::generate();
    let owner = store.create_user(NewUser {
        login: config.owner.clone(),
        display_name: "Owner".into(),
        password: password::hash(&initial)?,
        must_change_password: true,
        own_mailbox: None,
    })?;
    store.create_organization(&config.organization, owner.id)?;
    // Issue 12: the first owner is also the server's operator, who creates organizations.
    store.set_operator(owner.id, true)?;
    store.flush_blocking()?;
    Ok(Some(FirstOwner {
        organization: config.organization.clone(),
        login: owner.login,
        password: initial,
    }))
}

impl FirstOwner {
    /// The once-only message with the owner's login and initial password.
    pub fn banner(&self) -> String {
        format!(
            "\n\
             ================================================================\n\
             mailgate: first start. Created the organization \"{}\".\n\
             Its owner can log in to the admin API with\n\
             \n    login:    {}\n    password: {}\n\n\
             This password is shown only now and must be changed at first login.\n\
             ================================================================\n",
            self.organization, self.login, self.password
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    #[test]
    fn creates_the_owner_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = bootstrap(&store, &Bootstrap::default()).unwrap().unwrap();
        assert!(first.banner().contains(&first.password));
        let owner = store.user_by_login(&first.login).unwrap().unwrap();
        assert!(owner.must_change_password);
        assert!(password::verify_blocking(&owner.password, &first.password));
        let orgs = store.organizations().unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(
            store.role_in(orgs[0].id, owner.id).unwrap(),
            Some(Role::Owner)
        );
        assert!(
            store.mailboxes(orgs[0].id).unwrap().is_empty(),
            "nothing else is created"
        );
        assert_eq!(store.operators().unwrap(), [owner.id], "the first operator");
        assert!(bootstrap(&store, &Bootstrap::default()).unwrap().is_none());
    }

    /// At a later start the configured first owner is made operator only where there is
    /// none (a store made before operators existed: tests/organizations.rs); operators
    /// changed since are kept.
    #[test]
    fn operators_changed_since_the_first_start_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = bootstrap(&store, &Bootstrap::default()).unwrap().unwrap();
        let owner = store.user_by_login(&first.login).unwrap().unwrap();
        let other = crate::store::NewUser {
            login: "other@localhost".into(),
            display_name: String::new(),
            password: owner.password.clone(),
            must_change_password: false,
            own_mailbox: None,
        };
        let other = store.create_user(other).unwrap();
        store.set_operator(other.id, true).unwrap();
        store.set_operator(owner.id, false).unwrap();
        store.set_operator(other.id, false).unwrap_err();
        // Only an empty list is filled in: a server whose operators were changed keeps them.
        bootstrap(&store, &Bootstrap::default()).unwrap();
        assert_eq!(store.operators().unwrap(), [other.id]);
    }
}
