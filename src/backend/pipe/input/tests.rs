use std::time::Duration;

use tokio::{io::AsyncReadExt, net::unix::pipe};

use super::Input;

/// Line `seq` of writer `task`: its name, then `len` bytes, then the newline.
fn line(task: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut line = format!("{task}:{seq}:").into_bytes();
    line.resize(line.len() + len, b'x');
    line.push(b'\n');
    line
}

fn length(seq: usize) -> usize {
    // Short lines, lines near and beyond the pipe's 64 KiB buffer.
    [10, 3_000, 70_000, 5, 150_000, 65_536][seq % 6]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_from_many_writers_arrive_whole_and_in_order_behind_a_slow_reader() {
    const WRITERS: usize = 8;
    const LINES: usize = 60;
    let (sender, mut receiver) = pipe::pipe().unwrap();
    let input = Input::new(sender);
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        let mut buf = vec![0; 16 * 1024];
        for read in 0.. {
            let n = receiver.read(&mut buf).await.unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
            if read % 32 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        unreachable!()
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|task| {
            let input = input.clone();
            tokio::spawn(async move {
                for seq in 0..LINES {
                    input.send(line(task, seq, length(seq))).unwrap();
                    if seq % 4 == task % 4 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    // The last holder gone once the queue is written: the reader sees the end.
    drop(input);
    let all = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the input was closed once written")
        .unwrap();
    let mut next = [0; WRITERS];
    let mut count = 0;
    for got in all.split_inclusive(|&b| b == b'\n') {
        let text = std::str::from_utf8(got).unwrap();
        let mut parts = text.splitn(3, ':');
        let task: usize = parts.next().unwrap().parse().unwrap();
        let seq: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(seq, next[task], "writer {task}'s lines in order");
        assert_eq!(
            got,
            line(task, seq, length(seq)),
            "line {seq} of {task} whole"
        );
        next[task] += 1;
        count += 1;
    }
    assert_eq!(count, WRITERS * LINES);
}

#[tokio::test]
async fn closing_drops_what_is_queued_and_ends_the_childs_input() {
    let (sender, mut receiver) = pipe::pipe().unwrap();
    let input = Input::new(sender);
    // More than the pipe holds, with nobody reading: the rest is queued.
    input.send(vec![b'a'; 1 << 20]).unwrap();
    input.send(b"after\n".to_vec()).unwrap();
    input.close();
    assert!(input.send(b"late\n".to_vec()).is_err());
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), receiver.read_to_end(&mut got))
        .await
        .expect("the write end was closed")
        .unwrap();
    assert!(got.len() < 1 << 20, "the queued rest was dropped");
    assert!(got.iter().all(|&b| b == b'a'));
}

/// Sends until one fails (the pipe's state is learnt from the runtime, so the first
/// lines may be queued before the break is seen).
async fn send_until_refused(input: &std::sync::Arc<Input>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while input.send(b"x\n".to_vec()).is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("sends fail once the child is gone");
    assert!(input.send(b"y\n".to_vec()).is_err(), "and every send after");
}

#[tokio::test]
async fn a_child_that_is_gone_fails_the_sends() {
    let (sender, receiver) = pipe::pipe().unwrap();
    drop(receiver);
    send_until_refused(&Input::new(sender)).await;
}

#[tokio::test]
async fn a_child_gone_while_a_line_waits_fails_the_sends_after_it() {
    let (sender, receiver) = pipe::pipe().unwrap();
    let input = Input::new(sender);
    input.send(vec![b'a'; 1 << 20]).unwrap();
    drop(receiver);
    // The task writing the queue finds the pipe broken and closes the input.
    send_until_refused(&input).await;
}
