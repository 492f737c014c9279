use bytes::Bytes;
use futures::{StreamExt, stream};
use proptest::prelude::*;
use sse_stream::{Sse, SseStream};

use super::{Parser, events};

/// What the parser queues for `chunks`, read in that order.
fn parse(chunks: &[&[u8]], max: usize) -> Vec<Result<Sse, String>> {
    let mut parser = Parser::new(max);
    for chunk in chunks {
        parser.feed(chunk);
    }
    parser.queue.into_iter().collect()
}

fn event(data: Option<&str>, id: Option<&str>) -> Sse {
    Sse {
        data: data.map(str::to_owned),
        id: id.map(str::to_owned),
        ..Sse::default()
    }
}

/// An event as generated: its fields, and comment lines among them.
#[derive(Debug, Clone)]
struct Generated {
    name: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: bool,
}

impl Generated {
    fn expected(&self) -> Option<Sse> {
        let set = self.name.is_some()
            || !self.data.is_empty()
            || self.id.is_some()
            || self.retry.is_some();
        set.then(|| Sse {
            event: self.name.clone(),
            data: (!self.data.is_empty()).then(|| self.data.join("\n")),
            id: self.id.clone(),
            retry: self.retry,
        })
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.comment {
            lines.push(": keep-alive".to_owned());
        }
        if let Some(name) = &self.name {
            lines.push(format!("event: {name}"));
        }
        for data in &self.data {
            lines.push(format!("data: {data}"));
        }
        if let Some(id) = &self.id {
            lines.push(format!("id: {id}"));
        }
        if let Some(retry) = self.retry {
            lines.push(format!("retry: {retry}"));
        }
        lines.push(String::new());
        lines
    }
}

fn text() -> impl Strategy<Value = String> {
    // Colons, spaces (a leading one beyond the separator's is the value's), quotes, Unicode.
    "[a-z: \"{}é€😀]{0,12}"
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        proptest::option::of("[a-z]{1,8}"),
        prop::collection::vec(text(), 0..4),
        proptest::option::of(text()),
        proptest::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(name, data, id, retry, comment)| Generated {
            name,
            data,
            id,
            retry,
            comment,
        })
}

/// The stream's bytes, each line ended by LF, CR or CRLF as `ends` says (a blank line after
/// a CR never ends with a lone LF, which would read as that CR's LF).
fn serialize(events: &[Generated], ends: &[u8], bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    let mut after_cr = false;
    for (i, line) in events.iter().flat_map(Generated::lines).enumerate() {
        out.extend_from_slice(line.as_bytes());
        let mut end = ends[i % ends.len()] % 3;
        if after_cr && line.is_empty() && end == 0 {
            end = 2;
        }
        out.extend_from_slice(match end {
            0 => b"\n".as_slice(),
            1 => b"\r",
            _ => b"\r\n",
        });
        after_cr = end == 1;
    }
    out
}

/// `bytes` cut at `cuts` (positions modulo its length).
fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[from..to]);
        from = to;
    }
    chunks
}

proptest! {
    /// However the stream is cut into chunks, with whatever line ends, the events are the
    /// ones written, and the same as the `sse-stream` crate reads from it.
    #[test]
    fn any_chunking_reads_the_events_written(
        written in prop::collection::vec(generated(), 0..6),
        ends in prop::collection::vec(any::<u8>(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        bom in any::<bool>(),
    ) {
        let bytes = serialize(&written, &ends, bom);
        let expected: Vec<Sse> = written.iter().filter_map(Generated::expected).collect();
        let chunks = chunked(&bytes, &cuts);
        let read: Vec<Sse> = parse(&chunks, usize::MAX)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(&read, &expected);
        let owned: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let theirs: Vec<Sse> = futures::executor::block_on(
            SseStream::from_bytes_stream(stream::iter(owned))
                .map(|e| e.unwrap())
                .collect::<Vec<_>>(),
        );
        prop_assert_eq!(read, theirs);
    }
}

#[test]
fn a_long_line_is_read_across_chunks() {
    let data = "x".repeat(70_000);
    let bytes = format!("id: 7\ndata: {data}\n\n");
    let chunks: Vec<&[u8]> = bytes.as_bytes().chunks(8_192).collect();
    assert_eq!(
        parse(&chunks, usize::MAX),
        vec![Ok(event(Some(&data), Some("7")))]
    );
}

#[test]
fn an_event_over_its_bound_ends_the_stream_with_an_error() {
    // "data: " and 94 bytes: 100 bytes, the bound exactly.
    let fits = format!("data: {}\n\ndata: b\n\n", "a".repeat(94));
    let read = parse(&[fits.as_bytes()], 100);
    assert_eq!(
        read,
        vec![
            Ok(event(Some(&"a".repeat(94)), None)),
            Ok(event(Some("b"), None))
        ]
    );
    // One byte more, whether it arrives in one chunk or a byte at a time.
    let over = format!("data: {}\n\ndata: b\n\n", "a".repeat(95));
    for chunks in [
        vec![over.as_bytes()],
        over.as_bytes().chunks(1).collect::<Vec<_>>(),
    ] {
        let read = parse(&chunks, 100);
        assert_eq!(read.len(), 1, "{read:?}");
        assert!(
            read[0]
                .as_ref()
                .unwrap_err()
                .contains("larger than 100 bytes")
        );
    }
    // Lines of one event count together; a line without its end counts too.
    let lines = format!("data: {}\ndata: {}\n\n", "a".repeat(60), "b".repeat(60));
    assert!(parse(&[lines.as_bytes()], 100)[0].is_err());
    let endless = "a".repeat(101);
    assert!(parse(&[endless.as_bytes()], 100)[0].is_err());
}

#[test]
fn what_the_format_skips_is_skipped() {
    let bytes = "data\n\
                 unknown: x\n\
                 retry: 12x\n\
                 retry: \n\
                 id: a\0b\n\
                 : a comment\n\
                 event: first\n\
                 event: second\n\
                 id: 1\n\
                 id: 2\n\
                 \n\
                 retry: 99999999999999999999999\n\
                 \n";
    assert_eq!(
        parse(&[bytes.as_bytes()], usize::MAX),
        vec![Ok(Sse {
            event: Some("second".to_owned()),
            data: Some(String::new()),
            id: Some("2".to_owned()),
            retry: None,
        })]
    );
}

#[test]
fn a_byte_order_mark_is_dropped_only_first() {
    let bom = "\u{feff}";
    let bytes = format!("{bom}data: a\n\n{bom}data: b\n\n");
    let read = parse(&[bytes.as_bytes()], usize::MAX);
    assert_eq!(read[0], Ok(event(Some("a"), None)));
    assert_eq!(
        read.len(),
        1,
        "a mark later is a field named with it: skipped"
    );
}

#[test]
fn an_empty_chunk_between_cr_and_lf_keeps_them_one_line_end() {
    let read = parse(&[b"event: a\r", b"", b"\ndata: b\r\n\r\n"], usize::MAX);
    let mut expected = event(Some("b"), None);
    expected.event = Some("a".to_owned());
    assert_eq!(read, vec![Ok(expected)]);
}

#[test]
fn data_that_is_not_utf8_is_an_error() {
    let read = parse(&[b"data: \xff\xfe\n\ndata: b\n\n"], usize::MAX);
    assert_eq!(read.len(), 1);
    assert!(read[0].as_ref().unwrap_err().contains("not UTF-8"));
}

#[tokio::test]
async fn the_stream_ends_after_an_error_and_drops_an_unfinished_event() {
    let body = |items: Vec<Result<Bytes, std::io::Error>>| stream::iter(items).boxed();
    let read: Vec<_> = events(
        body(vec![
            Ok(Bytes::from_static(b"id: 1\ndata: a\n\n")),
            Err(std::io::Error::other("reset")),
            Ok(Bytes::from_static(b"data: never\n\n")),
        ]),
        usize::MAX,
    )
    .collect()
    .await;
    assert_eq!(read.len(), 2);
    assert_eq!(read[0], Ok(event(Some("a"), Some("1"))));
    assert!(read[1].as_ref().unwrap_err().contains("reset"));

    let read: Vec<_> = events(
        body(vec![Ok(Bytes::from_static(
            b"data: a\n\ndata: unfinished\n",
        ))]),
        usize::MAX,
    )
    .collect()
    .await;
    assert_eq!(read, vec![Ok(event(Some("a"), None))]);
}
