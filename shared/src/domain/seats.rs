//! Who holds a seat (design §6, "Seats and activity, one table").

use super::AccountKind;

/// The facts about a Box user that decide its kind and whether it holds a seat.
#[derive(Debug, Clone, Copy)]
pub struct BoxUserFacts<'a> {
    pub id: &'a str,
    pub login: &'a str,
    pub is_platform_access_only: bool,
    /// The user's enterprise, when Box said.
    pub enterprise_id: Option<&'a str>,
    /// The enterprise the integration is connected to.
    pub integration_enterprise_id: &'a str,
    /// The integration's own service account.
    pub service_user_id: Option<&'a str>,
}

/// Box: managed users hold a seat whatever their status (an `inactive` user still does);
/// app users, service accounts and external users hold none.
pub fn classify_box_user(user: BoxUserFacts<'_>) -> (AccountKind, bool) {
    let login = user.login.to_ascii_lowercase();
    if user.is_platform_access_only || login.starts_with("appuser_") {
        return (AccountKind::App, false);
    }
    let is_service_login =
        login.starts_with("automationuser_") && login.ends_with("@boxdevedition.com");
    if is_service_login || user.service_user_id == Some(user.id) {
        return (AccountKind::Service, false);
    }
    if let Some(enterprise) = user.enterprise_id
        && enterprise != user.integration_enterprise_id
    {
        return (AccountKind::External, false);
    }
    (AccountKind::Human, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(login: &'a str) -> BoxUserFacts<'a> {
        BoxUserFacts {
            id: "10",
            login,
            is_platform_access_only: false,
            enterprise_id: Some("42"),
            integration_enterprise_id: "42",
            service_user_id: Some("99"),
        }
    }

    #[test]
    fn managed_users_hold_a_seat() {
        assert_eq!(
            classify_box_user(facts("ann@example.com")),
            (AccountKind::Human, true)
        );
    }

    #[test]
    fn app_users_hold_no_seat() {
        let f = BoxUserFacts {
            is_platform_access_only: true,
            ..facts("AppUser_1_x@boxdevedition.com")
        };
        assert_eq!(classify_box_user(f), (AccountKind::App, false));
    }

    #[test]
    fn the_service_account_holds_no_seat() {
        assert_eq!(
            classify_box_user(facts("AutomationUser_1_abc@boxdevedition.com")),
            (AccountKind::Service, false)
        );
        let own = BoxUserFacts {
            id: "99",
            ..facts("svc@example.com")
        };
        assert_eq!(classify_box_user(own), (AccountKind::Service, false));
    }

    #[test]
    fn users_of_another_enterprise_are_external() {
        let f = BoxUserFacts {
            enterprise_id: Some("7"),
            ..facts("x@other.com")
        };
        assert_eq!(classify_box_user(f), (AccountKind::External, false));
    }
}
