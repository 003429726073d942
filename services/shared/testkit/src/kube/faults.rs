//! Injected faults: a delay and/or a failure for the requests a rule
//! matches (by verb, resource, object name and client). The first matching
//! rule applies; a rule with `times` is used up after that many requests.

use std::time::Duration;

/// The Kubernetes verbs the fake understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
        )
    }
}

/// An error answer: HTTP code, Status reason and message.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// One rule. Build with [`Fault::on`] and the setters.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    pub(crate) verb: Option<Verb>,
    pub(crate) resource: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) client: Option<String>,
    /// Waited before the request is acted on (`None` with `hang`: forever).
    pub(crate) delay: Duration,
    pub(crate) hang: bool,
    /// Waited after the request was acted on, before the answer is sent.
    pub(crate) delay_answer: Duration,
    pub(crate) fail: Option<Failure>,
    pub(crate) times: Option<usize>,
}

impl Fault {
    /// Matches every request with this verb (`None`: any verb).
    pub fn on(verb: impl Into<Option<Verb>>) -> Fault {
        Fault {
            verb: verb.into(),
            ..Fault::default()
        }
    }

    /// Only this resource (its URL plural, e.g. `leases`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_owned());
        self
    }

    /// Only the object with this name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Only requests of this client (its bearer token; see
    /// [`super::FakeApi::kubeconfig_for`]).
    pub fn client(mut self, token: &str) -> Self {
        self.client = Some(token.to_owned());
        self
    }

    /// Waits `d` before acting on the request.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Acts on the request, then waits `d` before answering (the change is
    /// visible to others while this client still waits).
    pub fn delay_answer(mut self, d: Duration) -> Self {
        self.delay_answer = d;
        self
    }

    /// Never answers.
    pub fn hang(mut self) -> Self {
        self.hang = true;
        self
    }

    /// Answers `code` with a Status of `reason` and `message` instead of
    /// acting.
    pub fn fail(mut self, code: u16, reason: &str, message: &str) -> Self {
        self.fail = Some(Failure {
            code,
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
        self
    }

    /// Applies to the next `n` matching requests only.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    pub(crate) fn matches(
        &self,
        verb: Verb,
        resource: &str,
        name: Option<&str>,
        client: &str,
    ) -> bool {
        self.verb.is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
            && self.client.as_deref().is_none_or(|c| c == client)
            && self.times != Some(0)
    }
}

/// Handle to remove a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultId(pub(crate) u64);
