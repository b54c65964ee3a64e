//! The one place that decides whether an account may be reclaimed (design §8), as pure
//! rules over what is known: the stored account at plan, the user as Box has it now at
//! re-verify. What needs I/O (groups, the user's own events, the LOGIN window) is read by
//! `plan` and `verify`, which then ask [`Rules::excluded_group`] and friends.

use crate::domain::{
    Account, AccountKind, BoxUserFacts, EffectivePolicy, ReclaimActionKind, SkipReason,
    classify_box_user,
};
use crate::provider::box_client::BoxUser;
use chrono::{DateTime, Duration, Utc};

/// Why an account is left alone, with a fact behind it for reports (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Skip {
    pub reason: SkipReason,
    pub detail: Option<String>,
}

impl Skip {
    pub fn new(reason: SkipReason) -> Self {
        Self {
            reason,
            detail: None,
        }
    }

    pub fn with_detail(reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: Some(detail.into()),
        }
    }
}

/// Box's status of a deactivated user.
pub(super) const INACTIVE: &str = "inactive";
/// The only role a reclaimable user has.
const REGULAR_ROLE: &str = "user";

/// The rules of one job at one moment.
pub(super) struct Rules<'a> {
    pub policy: &'a EffectivePolicy,
    /// The user the integration acts as (CCG service account, OAuth authoriser).
    pub own_user_id: Option<&'a str>,
    /// The integration's Box enterprise.
    pub enterprise_id: &'a str,
    pub now: DateTime<Utc>,
}

impl Rules<'_> {
    /// Logins at or after this make an account active.
    pub fn inactive_since(&self) -> DateTime<Utc> {
        self.now - Duration::days(i64::from(self.policy.inactive_days()))
    }

    /// Plan: whether a stored seat holder becomes a candidate. Group memberships are not
    /// stored; the caller reads them live next.
    pub fn plan_account(&self, account: &Account) -> Result<(), Skip> {
        self.identity(&account.external_id, &account.login)?;
        kind(account.kind)?;
        if !account.holds_seat() {
            return Err(Skip::new(SkipReason::NoSeat));
        }
        role(account.role.as_deref())?;
        self.status(&account.status)?;
        if let Some(at) = account.last_login_at
            && at >= self.inactive_since()
        {
            return Err(Skip::with_detail(SkipReason::RecentLogin, at.to_rfc3339()));
        }
        self.grace(account.created_at)
    }

    /// Re-verify: the user as Box has it now, against what plan saw (`planned`, the stored
    /// account).
    pub fn live_user(&self, user: &BoxUser, planned: &Account) -> Result<(), Skip> {
        let login = user.login.as_deref().unwrap_or_default();
        self.identity(&user.id, login)?;
        let Some(enterprise) = user.enterprise.as_ref() else {
            // Nothing proves the user is one of ours.
            return Err(Skip::with_detail(
                SkipReason::External,
                "Box named no enterprise",
            ));
        };
        let (kind_now, holds_seat) = classify_box_user(BoxUserFacts {
            id: &user.id,
            login,
            is_platform_access_only: user.is_platform_access_only.unwrap_or(false),
            enterprise_id: Some(enterprise.id.as_str()),
            integration_enterprise_id: self.enterprise_id,
            service_user_id: self.own_user_id,
        });
        kind(kind_now)?;
        if !holds_seat {
            return Err(Skip::new(SkipReason::NoSeat));
        }
        role(user.role.as_deref())?;
        if user.role != planned.role {
            return Err(Skip::with_detail(
                SkipReason::RoleChanged,
                format!(
                    "{} -> {}",
                    planned.role.as_deref().unwrap_or("none"),
                    user.role.as_deref().unwrap_or("none")
                ),
            ));
        }
        let status = user.status.as_deref().unwrap_or("unknown");
        if status != planned.status {
            return Err(Skip::with_detail(
                SkipReason::StatusChanged,
                format!("{} -> {status}", planned.status),
            ));
        }
        self.status(status)?;
        self.grace(user.created_at.map(|at| at.to_utc()))
    }

    /// The first excluded group among the user's groups (read live).
    pub fn excluded_group(&self, group_ids: &[String]) -> Result<(), Skip> {
        match self.policy.exclusions().excluded_group(group_ids) {
            Some(group) => Err(Skip::with_detail(SkipReason::ExcludedGroup, group)),
            None => Ok(()),
        }
    }

    /// Who the account is: never the integration's own user, the transfer target, or an
    /// excluded id or login.
    fn identity(&self, external_id: &str, login: &str) -> Result<(), Skip> {
        if self.own_user_id == Some(external_id) {
            return Err(Skip::new(SkipReason::OwnUser));
        }
        if self.policy.transfer_to() == Some(external_id) {
            return Err(Skip::new(SkipReason::TransferTarget));
        }
        match self.policy.exclusions().reason_for(external_id, login) {
            Some(reason) => Err(Skip::new(reason)),
            None => Ok(()),
        }
    }

    /// A deactivate job leaves inactive users alone (nothing to give back, nothing to
    /// restore later).
    fn status(&self, status: &str) -> Result<(), Skip> {
        if self.policy.action() == ReclaimActionKind::Deactivate && status == INACTIVE {
            return Err(Skip::new(SkipReason::AlreadyInactive));
        }
        Ok(())
    }

    /// Accounts created within the grace period are never acted on; an unknown creation
    /// time cannot prove it is over.
    fn grace(&self, created_at: Option<DateTime<Utc>>) -> Result<(), Skip> {
        let Some(created) = created_at else {
            return Err(Skip::new(SkipReason::CreationUnknown));
        };
        let grace_ends = created + Duration::days(i64::from(self.policy.grace_days()));
        if grace_ends > self.now {
            return Err(Skip::with_detail(
                SkipReason::GracePeriod,
                created.to_rfc3339(),
            ));
        }
        Ok(())
    }
}

fn kind(kind: AccountKind) -> Result<(), Skip> {
    match kind {
        AccountKind::Human => Ok(()),
        AccountKind::Service => Err(Skip::new(SkipReason::Service)),
        AccountKind::App => Err(Skip::new(SkipReason::App)),
        AccountKind::External => Err(Skip::new(SkipReason::External)),
    }
}

/// Only a regular user: admins and co-admins never, and a role Box did not name, or one
/// this code does not know, is not proof of a regular user.
fn role(role: Option<&str>) -> Result<(), Skip> {
    match role {
        Some(REGULAR_ROLE) => Ok(()),
        Some("admin") => Err(Skip::new(SkipReason::Admin)),
        Some("coadmin") => Err(Skip::new(SkipReason::CoAdmin)),
        Some(other) => Err(Skip::with_detail(SkipReason::UnknownRole, other)),
        None => Err(Skip::new(SkipReason::UnknownRole)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ReclaimGuardRails, ReclaimPolicy};
    use crate::provider::box_client::BoxEnterprise;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    }

    fn policy(action: ReclaimActionKind) -> EffectivePolicy {
        let rails = ReclaimGuardRails {
            excluded_logins: vec!["Keep@Example.com".into()],
            excluded_user_ids: vec!["13".into()],
            excluded_group_ids: vec!["900".into()],
            ..ReclaimGuardRails::default()
        };
        let policy = ReclaimPolicy {
            action,
            transfer_to: (action == ReclaimActionKind::Delete).then(|| "77".to_owned()),
            ..ReclaimPolicy::default()
        };
        policy.tightened_by(&rails, None).unwrap()
    }

    fn rules(policy: &EffectivePolicy) -> Rules<'_> {
        Rules {
            policy,
            own_user_id: Some("5"),
            enterprise_id: "1000",
            now: now(),
        }
    }

    fn dormant() -> Account {
        Account {
            external_id: "42".into(),
            login: "ann@example.com".into(),
            name: "Ann".into(),
            kind: AccountKind::Human,
            status: "active".into(),
            role: Some("user".into()),
            license_type: Some("Business".into()),
            last_login_at: Some(now() - Duration::days(200)),
            created_at: Some(now() - Duration::days(700)),
            modified_at: None,
            space_amount_bytes: None,
            space_used_bytes: None,
            max_upload_size_bytes: None,
            is_sync_enabled: None,
            is_exempt_from_device_limits: None,
            attributes: BTreeMap::new(),
            vanished_at: None,
        }
    }

    fn live(account: &Account) -> BoxUser {
        serde_json::from_value(serde_json::json!({
            "id": account.external_id,
            "login": account.login,
            "status": account.status,
            "role": account.role,
            "created_at": account.created_at.map(|t| t.to_rfc3339()),
            "enterprise": {"id": "1000", "type": "enterprise"},
        }))
        .unwrap()
    }

    fn reason(result: Result<(), Skip>) -> Option<SkipReason> {
        result.err().map(|s| s.reason)
    }

    #[test]
    fn a_dormant_regular_user_is_a_candidate() {
        let p = policy(ReclaimActionKind::Deactivate);
        let r = rules(&p);
        assert_eq!(r.plan_account(&dormant()), Ok(()));
        assert_eq!(r.live_user(&live(&dormant()), &dormant()), Ok(()));
    }

    #[test]
    fn admins_coadmins_and_unknown_roles_are_never_candidates() {
        let p = policy(ReclaimActionKind::Deactivate);
        let r = rules(&p);
        for (role, want) in [
            (Some("admin"), SkipReason::Admin),
            (Some("coadmin"), SkipReason::CoAdmin),
            (Some("group_admin"), SkipReason::UnknownRole),
            (None, SkipReason::UnknownRole),
        ] {
            let account = Account {
                role: role.map(str::to_owned),
                ..dormant()
            };
            assert_eq!(reason(r.plan_account(&account)), Some(want));
            // Promoted since the plan: the live role decides.
            let now_user = live(&account);
            assert_eq!(reason(r.live_user(&now_user, &dormant())), Some(want));
        }
    }

    #[test]
    fn own_user_transfer_target_and_exclusions_are_never_candidates() {
        let p = policy(ReclaimActionKind::Delete);
        let r = rules(&p);
        let cases = [
            ("5", "svc@example.com", SkipReason::OwnUser),
            ("77", "target@example.com", SkipReason::TransferTarget),
            ("13", "x@example.com", SkipReason::ExcludedId),
            ("14", "KEEP@example.com", SkipReason::ExcludedLogin),
        ];
        for (id, login, want) in cases {
            let account = Account {
                external_id: id.into(),
                login: login.into(),
                ..dormant()
            };
            assert_eq!(reason(r.plan_account(&account)), Some(want), "{id}");
            assert_eq!(
                reason(r.live_user(&live(&account), &account)),
                Some(want),
                "{id}"
            );
        }
        assert_eq!(
            reason(r.excluded_group(&["1".into(), "900".into()])),
            Some(SkipReason::ExcludedGroup)
        );
        assert_eq!(r.excluded_group(&["1".into()]), Ok(()));
    }

    #[test]
    fn service_app_and_external_accounts_are_never_candidates() {
        let p = policy(ReclaimActionKind::Deactivate);
        let r = rules(&p);
        for (kind, want) in [
            (AccountKind::Service, SkipReason::Service),
            (AccountKind::App, SkipReason::App),
            (AccountKind::External, SkipReason::External),
        ] {
            let account = Account { kind, ..dormant() };
            assert_eq!(reason(r.plan_account(&account)), Some(want));
        }
        let mut service = live(&dormant());
        service.login = Some("AutomationUser_1_x@boxdevedition.com".into());
        assert_eq!(
            reason(r.live_user(&service, &dormant())),
            Some(SkipReason::Service)
        );
        let mut app = live(&dormant());
        app.is_platform_access_only = Some(true);
        assert_eq!(reason(r.live_user(&app, &dormant())), Some(SkipReason::App));
        let mut external = live(&dormant());
        external.enterprise = Some(BoxEnterprise {
            id: "2000".into(),
            name: None,
        });
        assert_eq!(
            reason(r.live_user(&external, &dormant())),
            Some(SkipReason::External)
        );
        external.enterprise = None;
        assert_eq!(
            reason(r.live_user(&external, &dormant())),
            Some(SkipReason::External)
        );
    }

    #[test]
    fn new_accounts_and_unknown_creation_are_never_candidates() {
        let p = policy(ReclaimActionKind::Deactivate);
        let r = rules(&p);
        let new = Account {
            last_login_at: None,
            created_at: Some(now() - Duration::days(29)),
            ..dormant()
        };
        assert_eq!(reason(r.plan_account(&new)), Some(SkipReason::GracePeriod));
        let unknown = Account {
            last_login_at: None,
            created_at: None,
            ..dormant()
        };
        assert_eq!(
            reason(r.plan_account(&unknown)),
            Some(SkipReason::CreationUnknown)
        );
        let old_enough = Account {
            last_login_at: None,
            created_at: Some(now() - Duration::days(31)),
            ..dormant()
        };
        assert_eq!(r.plan_account(&old_enough), Ok(()));
    }

    #[test]
    fn recent_logins_and_changes_since_the_plan_are_skipped() {
        let p = policy(ReclaimActionKind::Delete);
        let r = rules(&p);
        let recent = Account {
            last_login_at: Some(now() - Duration::days(89)),
            ..dormant()
        };
        assert_eq!(
            reason(r.plan_account(&recent)),
            Some(SkipReason::RecentLogin)
        );
        let mut reactivated = live(&dormant());
        reactivated.status = Some("inactive".into());
        assert_eq!(
            reason(r.live_user(&reactivated, &dormant())),
            Some(SkipReason::StatusChanged)
        );
        let no_seat = Account {
            license_type: None,
            ..dormant()
        };
        assert_eq!(reason(r.plan_account(&no_seat)), Some(SkipReason::NoSeat));
    }

    #[test]
    fn a_deactivate_job_skips_inactive_users_and_a_delete_job_takes_them() {
        let inactive = Account {
            status: "inactive".into(),
            ..dormant()
        };
        let deactivate = policy(ReclaimActionKind::Deactivate);
        assert_eq!(
            reason(rules(&deactivate).plan_account(&inactive)),
            Some(SkipReason::AlreadyInactive)
        );
        let delete = policy(ReclaimActionKind::Delete);
        assert_eq!(rules(&delete).plan_account(&inactive), Ok(()));
        assert_eq!(
            rules(&delete).live_user(&live(&inactive), &inactive),
            Ok(())
        );
    }
}
