//! The SNS adapter of the reclaim service's [`Notifier`] port: notices to the admins
//! (a job waiting for an approval, a job that failed) published to one topic, whose
//! subscribers (e-mail, chat) are set up in AWS. Locally, `LogNotifier` writes them to the log.

use crate::services::reclaim::{Notice, Notifier, NotifyError};
use async_trait::async_trait;

/// SNS accepts a subject of printable ASCII "less than 100 characters long" (no line
/// breaks).
pub const MAX_SUBJECT_CHARS: usize = 99;

/// Publishes notices to one SNS topic (`SEATKEEPER_NOTIFY_TOPIC_ARN`, read by the function
/// that builds it).
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(&notice.subject))
            .message(&notice.message)
            .send()
            .await
            .map_err(|e| NotifyError::Send {
                message: "SNS did not accept the notice".to_owned(),
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }
}

/// A subject SNS accepts: printable ASCII only (line breaks and other control characters
/// become spaces; an integration's name may hold any character, and the others become
/// `?`), starting with a printable character, at most [`MAX_SUBJECT_CHARS`], never empty.
/// SNS refuses the whole message otherwise, and the notice would be lost for a cosmetic
/// reason.
pub fn sns_subject(subject: &str) -> String {
    let printable: String = subject
        .chars()
        .map(|c| match c {
            c if c.is_ascii_graphic() || c == ' ' => c,
            c if c.is_whitespace() || c.is_control() => ' ',
            _ => '?',
        })
        .collect();
    let out: String = printable.trim().chars().take(MAX_SUBJECT_CHARS).collect();
    let out = out.trim_end();
    if out.is_empty() {
        "Seatkeeper notice".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_made_printable_ascii_and_short() {
        assert_eq!(sns_subject("Reclaim job 1 awaits"), "Reclaim job 1 awaits");
        assert_eq!(sns_subject("Zürich\nteam"), "Z?rich team");
        let long = "x".repeat(300);
        assert_eq!(sns_subject(&long).len(), MAX_SUBJECT_CHARS);
        assert_eq!(sns_subject("  \t "), "Seatkeeper notice");
        assert_eq!(sns_subject(" leading space"), "leading space");
    }
}
