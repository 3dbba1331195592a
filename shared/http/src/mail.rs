//! The post-order invitation email: the survey snippet with the respondent's links, a plain-text
//! part and the unsubscribe headers, as one MIME message.
