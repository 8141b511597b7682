//! S3 notifications (the embed function's trigger), decoded into the ports' object events.

use aws_lambda_events::s3::S3Event;

use crate::ports::{ObjectEvent, ObjectEventKind};

/// One [`ObjectEvent`] per record, in order. The write is identified by the record's sequencer,
/// else its version id, else its ETag (S3 sends `null` or nothing for what it lacks).
pub fn object_events(event: &S3Event) -> Vec<ObjectEvent> {
    event
        .records
        .iter()
        .map(|record| {
            let name = record.event_name.clone().unwrap_or_default();
            let object = &record.s3.object;
            let usable = |v: &Option<String>| v.clone().filter(|v| !v.is_empty() && v != "null");
            ObjectEvent {
                kind: if name.starts_with("ObjectCreated") {
                    ObjectEventKind::Created
                } else if name.starts_with("ObjectRemoved") {
                    ObjectEventKind::Removed
                } else {
                    ObjectEventKind::Other
                },
                name,
                bucket: record.s3.bucket.name.clone().unwrap_or_default(),
                key: decode_s3_key(object.key.as_deref().unwrap_or("")),
                write: usable(&object.sequencer)
                    .or_else(|| usable(&object.version_id))
                    .or_else(|| usable(&object.e_tag)),
            }
        })
        .collect()
}

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_s3_key(raw: &str) -> String {
    let plus_decoded = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_s3_event_keys() {
        assert_eq!(
            decode_s3_key("tenants/acme/My+File%2B1.txt"),
            "tenants/acme/My File+1.txt"
        );
        assert_eq!(
            decode_s3_key("r%C3%A9sum%C3%A9+%E6%97%A5%E6%9C%AC.md"),
            "résumé 日本.md"
        );
    }

    #[test]
    fn records_become_object_events_with_their_write() {
        use aws_lambda_events::s3::S3EventRecord;
        let record = |name: &str,
                      key: &str,
                      seq: Option<&str>,
                      version: Option<&str>,
                      etag: Option<&str>| {
            let mut r = S3EventRecord::default();
            r.event_name = Some(name.into());
            r.s3.bucket.name = Some("docs".into());
            r.s3.object.key = Some(key.into());
            r.s3.object.sequencer = seq.map(Into::into);
            r.s3.object.version_id = version.map(Into::into);
            r.s3.object.e_tag = etag.map(Into::into);
            r
        };
        let mut event = S3Event::default();
        event.records = vec![
            record(
                "ObjectCreated:Put",
                "a+b.txt",
                Some("00A"),
                Some("null"),
                Some("e"),
            ),
            record("ObjectRemoved:Delete", "c.txt", None, Some("null"), None),
            record("ObjectRestore:Post", "d.txt", None, None, Some("f")),
        ];
        let events = object_events(&event);
        assert_eq!(events[0].kind, ObjectEventKind::Created);
        assert_eq!(events[0].key, "a b.txt");
        assert_eq!(events[0].write.as_deref(), Some("00A"));
        assert_eq!(events[1].kind, ObjectEventKind::Removed);
        assert_eq!(events[1].write, None);
        assert_eq!(events[2].kind, ObjectEventKind::Other);
        assert_eq!(events[2].write.as_deref(), Some("f"));
    }
}
