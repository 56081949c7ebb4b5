//! The twenty-sixth session's red team: values in base64 under a label that names them (a
//! Kubernetes Secret's `data:`), read with the label.

use super::twentyfourth_session::{hidden, untouched};
use super::twentysecond_redteam::all_policy;

fn b64(s: &str) -> String {
    super::b64(s.as_bytes())
}

#[test]
fn base64_values_under_their_label_are_found() {
    let policy = all_policy(true);
    let secret = "1qdXWPJx/d8ut8pdqsxRpvED5hJRaOvRTYZPNvS+";
    let encoded = b64(secret);
    for text in [
        format!(
            "data:\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {encoded}\n",
            b64("AKIAZ7QRSTUVWX2345AB")
        ),
        format!("{{\"data\": {{\"AWS_SECRET_ACCESS_KEY\": \"{encoded}\"}}}}"),
    ] {
        assert!(hidden(&policy, &text, &encoded), "{text}");
    }
    let ssn = b64("536228726");
    assert!(hidden(&policy, &format!("data:\n  ssn: {ssn}\n"), &ssn));
    // A label with no value of its kind in the run, and a value of a kind the label does not
    // name, are left alone.
    assert!(untouched(
        &policy,
        &format!(
            "data:\n  AWS_SECRET_ACCESS_KEY: {}\n",
            b64("not a key at all, just words")
        )
    ));
    assert!(untouched(
        &policy,
        &format!("data:\n  config: {}\n", b64("log_level=debug\nworkers=4\n"))
    ));
}
