//! The built-in content rules: deny rules checked against every string (and object key) of a
//! tool call's arguments, and redactions an operator can opt into for results.
//!
//! Rule ids are stable: operators name them in `disabled_rules` and `redact_builtin`, and they
//! appear in errors, audit records and `[redacted:<id>]` markers. Renaming one is a breaking
//! change for every config that names it.
//!
//! Every pattern is written for the `regex` crate, which has no backtracking (search time is
//! linear in the text), and is kept precise rather than broad: a rule that fires on ordinary
//! paths, prose or code gets switched off, and then protects nothing. Character classes are
//! spelled out in ASCII (`[0-9]`, `[A-Za-z]`) and word boundaries are the ASCII `(?-u:\b)`;
//! the only Unicode-aware pieces are `\s` and `(?i)` (hence the `unicode-perl` and
//! `unicode-case` features of `regex`), which the lazy DFA runs on any text, so it never has
//! to fall back to a slower engine.
//!
//! | id | fires on |
//! |---|---|
//! | `private_key` | a private key header: `-----BEGIN [RSA\|EC\|OPENSSH\|PGP\|ENCRYPTED …]PRIVATE KEY-----`, PuTTY key files |
//! | `aws_access_key_id` | an AWS access key id: `AKIA`/`ASIA`/`ABIA`/`ACCA`/`A3T…` and 16 base-32 characters |
//! | `aws_secret_access_key` | `aws_secret_access_key = <40 characters>` (the secret is only recognisable next to its name) |
//! | `github_token` | GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and fine-grained `github_pat_` |
//! | `gitlab_token` | GitLab tokens: `glpat-`, `glptt-`, `gldt-`, `glrt-` |
//! | `slack_token` | Slack tokens (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxo-`, `xapp-`) and webhook URLs |
//! | `google_credential` | Google API keys (`AIza…`), OAuth client secrets (`GOCSPX-…`) and access tokens (`ya29.…`) |
//! | `stripe_secret_key` | Stripe live secret and restricted keys (`sk_live_`, `rk_live_`) |
//! | `openai_api_key` | OpenAI API keys (`sk-…T3BlbkFJ…`, `sk-proj-…`) |
//! | `anthropic_api_key` | Anthropic API keys (`sk-ant-api03-…`, `sk-ant-admin01-…`) |
//! | `path_traversal` | a `..` path segment (`../`, `..\`, a bare `..`), also URL-encoded, double-encoded or overlong (`%2e%2e%2f`, `..%2f`, `%252e%252e%252f`, `%c0%ae%c0%ae/`) |
//! | `sensitive_path` | `/etc/shadow`, `/etc/passwd`, `/etc/sudoers`, `/proc/self/environ`, `~/.ssh/`, `~/.gnupg/`, `.aws/credentials`, `.kube/config`, `.docker/config.json`, `.git-credentials`, `.netrc`, `.pgpass`, the Windows SAM hive |
//! | `sql_tautology` | a quote closed and followed by an always-true comparison: `' OR '1'='1`, `" or ""="`, `') OR (1=1`, `' AND 1=1` |
//! | `sql_comment` | a quote followed by a comment that cuts off the rest of the query: `admin'--`, `1'-- -`, `admin'#` |
//! | `sql_union_select` | `UNION [ALL\|DISTINCT] SELECT`, also with `/**/` or `(` between the words |
//! | `sql_stacked_query` | a second statement after `;`: `; DROP TABLE`, `; DELETE FROM t WHERE`, `; INSERT INTO t VALUES`, `; UPDATE t SET c =`, `; EXEC xp_…`, `; SHUTDOWN` |
//! | `sql_time_delay` | time-based blind injection: `WAITFOR DELAY '0:0:5'`, `pg_sleep(`, `BENCHMARK(1000000,`, `' AND SLEEP(` |
//! | `shell_substitution` | command substitution running a command: `$(id)`, `$(curl …)`, `` ;`whoami` ``, `` x=`cat …` ``, `${IFS}` |
//! | `shell_chained_command` | a command chained after `;`, `&`, `&&`, `\|`, `\|\|`: `; rm -rf`, `&& curl http://…`, `\| nc host 4444`, `; bash -c`, `; python -c`, `; chmod +x`, `; base64 -d` |
//! | `shell_pipe_to_shell` | output piped into a shell: `\| sh`, `\| bash`, `\| sudo bash -s` |
//! | `shell_reverse_shell` | reverse-shell idioms: `/dev/tcp/host/port`, `nc -e /bin/sh`, `bash -i >&`, `mkfifo /tmp/…;` |
//! | `shell_destructive` | `rm -rf /` (or `~`, `*`, `$HOME`), `--no-preserve-root`, a fork bomb, `mkfs … /dev/…`, `dd … of=/dev/sdX` |
//!
//! On by default: the secrets rules, `sensitive_path`, `shell_destructive` and
//! `shell_reverse_shell`. Off until asked for (`enabled_rules`): `path_traversal`, the SQL
//! rules, `shell_substitution`, `shell_chained_command` and `shell_pipe_to_shell`, which
//! fire on routine coding work as much as on attacks ([`on_by_default`]). Switch them on for the
//! tools whose arguments should hold no SQL, shell or `..` (a search box, a ticket title);
//! for tools whose arguments *are* SQL or shell (a database query tool, a terminal tool)
//! the operator's Cedar policy is the control that fits.
//!
//! Left out on purpose: a generic `password=…` / `secret: …` assignment rule. Such text cannot
//! be told apart from code and templates that merely *name* a secret
//! (`password = os.environ["DB_PASSWORD"]`, `password: ${PASSWORD}`) without entropy
//! heuristics, and tools that legitimately take credentials receive them as separate argument
//! values, where no text rule can tell a leak from intended use. Operators who want one add it
//! as a `deny` rule scoped to the tools where it fits.
//!
//! Redactions (results only, each opted into by id in `redact_builtin`):
//!
//! | id | replaces |
//! |---|---|
//! | `card_number` | payment card numbers: 13–19 digits (spaces or dashes allowed between groups) with a known issuer prefix and length, passing the Luhn check, so order ids, timestamps and phone numbers stay |
//! | `email` | e-mail addresses |
//! | `us_ssn` | US social security numbers written `123-45-6789`, with the ranges the SSA never issues excluded |
//! | `private_key` | a whole PEM private key block, header to footer (to the end of the string when the footer is missing) |
//! | `aws_access_key_id`, `github_token`, `gitlab_token`, `slack_token`, `google_credential`, `stripe_secret_key`, `openai_api_key`, `anthropic_api_key` | the same tokens the deny rules of those ids recognise, when a backend returns one |

/// A built-in deny rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id (see the module table).
    pub id: &'static str,
    /// What the rule recognises, as a noun phrase: the reason given when it blocks a call.
    pub description: &'static str,
    pub pattern: &'static str,
}

/// A built-in redaction.
#[derive(Debug, Clone, Copy)]
pub struct Redaction {
    pub id: &'static str,
    pub pattern: &'static str,
    /// A check a candidate match must also pass to be replaced (e.g. Luhn for card numbers).
    pub validate: Option<fn(&str) -> bool>,
}

/// Commands an injected substitution typically runs (shells, downloaders, recon, file
/// tampering), for `shell_substitution`.
macro_rules! shell_command {
    () => {
        r"(?:curl|wget|nc|ncat|netcat|socat|telnet|bash|sh|zsh|dash|ksh|python[0-9.]*|perl|ruby|php|node|id|whoami|uname|hostname|cat|rm|chmod|chown|base64|echo|printf|sleep|ping|nslookup|dig|env|ls|touch|mkfifo|kill|sudo|su|eval|exec)"
    };
}

// The secret patterns are shared by the deny rules and the redactions of the same id; they
// only use zero-width boundaries, so a redaction replaces exactly the token.
const PRIVATE_KEY_HEADER: &str =
    r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-[0-9]+:";
const PRIVATE_KEY_BLOCK: &str = r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|$)";
const AWS_ACCESS_KEY_ID: &str = r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}(?-u:\b)";
const GITHUB_TOKEN: &str =
    r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?-u:\b)";
const GITLAB_TOKEN: &str = r"(?-u:\b)gl(?:pat|ptt|dt|rt)-[0-9A-Za-z_-]{20,}";
const SLACK_TOKEN: &str = r"(?-u:\b)(?:xox[abposr]-[0-9]{6,16}-[0-9A-Za-z-]{8,}|xapp-[0-9]-[A-Z0-9]{6,}-[0-9]{6,}-[a-z0-9]{16,})|hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,}/[A-Z0-9]{6,}/[A-Za-z0-9]{16,}";
const GOOGLE_CREDENTIAL: &str =
    r"AIza[0-9A-Za-z_-]{35}|GOCSPX-[0-9A-Za-z_-]{28}|(?-u:\b)ya29\.[0-9A-Za-z_-]{30,}";
const STRIPE_SECRET_KEY: &str = r"(?-u:\b)(?:sk|rk)_live_[0-9A-Za-z]{24,}";
const OPENAI_API_KEY: &str =
    r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}";
const ANTHROPIC_API_KEY: &str = r"(?-u:\b)sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}";

/// The built-in deny rules, in the order they are reported when several match one string:
/// secrets first, so a leaked credential is named as such whatever else the string holds.
pub const DENY: &[Rule] = &[
    Rule {
        id: "private_key",
        description: "a private key",
        pattern: PRIVATE_KEY_HEADER,
    },
    Rule {
        id: "aws_access_key_id",
        description: "an AWS access key id",
        pattern: AWS_ACCESS_KEY_ID,
    },
    Rule {
        id: "aws_secret_access_key",
        description: "an AWS secret access key",
        pattern: r#"(?i)(?:aws_?)?secret_?access_?key['"]?\s*(?:[:=]|=>)\s*['"]?[A-Za-z0-9/+]{40}(?:[^A-Za-z0-9/+=]|$)"#,
    },
    Rule {
        id: "github_token",
        description: "a GitHub token",
        pattern: GITHUB_TOKEN,
    },
    Rule {
        id: "gitlab_token",
        description: "a GitLab token",
        pattern: GITLAB_TOKEN,
    },
    Rule {
        id: "slack_token",
        description: "a Slack token or webhook URL",
        pattern: SLACK_TOKEN,
    },
    Rule {
        id: "google_credential",
        description: "a Google API key or OAuth credential",
        pattern: GOOGLE_CREDENTIAL,
    },
    Rule {
        id: "stripe_secret_key",
        description: "a Stripe secret key",
        pattern: STRIPE_SECRET_KEY,
    },
    Rule {
        id: "openai_api_key",
        description: "an OpenAI API key",
        pattern: OPENAI_API_KEY,
    },
    Rule {
        id: "anthropic_api_key",
        description: "an Anthropic API key",
        pattern: ANTHROPIC_API_KEY,
    },
    Rule {
        id: "path_traversal",
        description: "a parent-directory path segment (path traversal)",
        pattern: r"(?i)(?:^|[/\\=])\.\.(?:[/\\]|$)|(?:%2e|%252e|%c0%ae)(?:\.|%2e|%252e|%c0%ae)(?:[/\\]|%2f|%5c|%252f|%255c|%c0%af|%c1%9c)|\.(?:%2e|%252e|%c0%ae)(?:[/\\]|%2f|%5c|%252f|%255c|%c0%af|%c1%9c)|\.\.(?:%2f|%5c|%252f|%255c|%c0%af|%c1%9c)",
    },
    Rule {
        id: "sensitive_path",
        description: "a path to system credentials or secrets",
        pattern: r"(?i)/etc/(?:g?shadow|passwd|sudoers|master\.passwd)(?:$|[^A-Za-z0-9_])|/proc/(?:self|[0-9]+)/(?:environ|mem)|(?:^|[/\\~])\.(?:ssh|gnupg)(?:[/\\]|$)|\.aws[/\\]credentials|\.kube[/\\]config|\.docker[/\\]config\.json|(?:^|[/\\~])\.(?:git-credentials|netrc|pgpass)(?:$|[^A-Za-z0-9_.-])|[/\\]system32[/\\]config[/\\]sam(?-u:\b)",
    },
    Rule {
        id: "sql_tautology",
        description: "an SQL injection (quote followed by an always-true condition)",
        pattern: r#"(?i)['"]\s*\)*\s*(?:(?:or|and)(?-u:\b)|\|\||&&)\s*\(*\s*(?:[0-9]+|'[^']{0,20}'?|"[^"]{0,20}"?|true|null)\s*(?:=|==|<>|!=|>=|<=|<|>|like\s|is\s)\s*\(*\s*(?:[0-9]|['"]|true|null)"#,
    },
    Rule {
        id: "sql_comment",
        description: "an SQL injection (quote followed by a comment that cuts off the query)",
        pattern: r#"['"]\)*(?:--(?:\s|\+|$)|#$)"#,
    },
    Rule {
        id: "sql_union_select",
        description: "an SQL injection (a UNION query)",
        pattern: r"(?i)(?-u:\b)union(?:\s|/\*[^*]{0,64}\*/|\()+(?:(?:all|distinct)(?:\s|/\*[^*]{0,64}\*/|\()+)?select(?-u:\b)",
    },
    Rule {
        id: "sql_stacked_query",
        description: "an SQL injection (a second statement after `;`)",
        pattern: r#"(?i);\s*(?:drop\s+(?:table|database|schema|user|view|index|function|procedure)\s|truncate\s+table\s|delete\s+from\s+[A-Za-z0-9_."`\[\]]{1,64}(?:\s*(?:;|--|$)|\s+where\s)|insert\s+into\s+[A-Za-z0-9_."`\[\]]{1,64}\s*(?:\(|values(?-u:\b)|select(?-u:\b))|alter\s+(?:table|user|database|role)\s|update\s+[A-Za-z0-9_."`\[\]]{1,64}\s+set\s+[A-Za-z0-9_."`\[\]]{1,64}\s*=|grant\s+all\s|exec(?:ute)?\s+(?:xp|sp)_[a-z]|shutdown\s*(?:--|;|$)|create\s+(?:user|login|role)\s)"#,
    },
    Rule {
        id: "sql_time_delay",
        description: "an SQL injection (time-based probe)",
        pattern: r#"(?i)waitfor\s+delay\s+'[0-9:.]+'|pg_sleep\s*\(|(?-u:\b)benchmark\s*\(\s*[0-9]{5,}\s*,|['"]\s*\)*\s*(?:and|or)\s+sleep\s*\(\s*[0-9]"#,
    },
    Rule {
        id: "shell_substitution",
        description: "a shell command substitution",
        pattern: concat!(
            r"\$\(\s*(?:[A-Za-z0-9_./-]*/)?",
            shell_command!(),
            r"(?:[\s);|&<>]|$)",
            r"|[;&=(]\s*`\s*(?:[A-Za-z0-9_./-]*/)?",
            shell_command!(),
            r"[\s`;|&<>]",
            r"|^`\s*(?:[A-Za-z0-9_./-]*/)?",
            shell_command!(),
            r"(?:\s[^`]*)?`$",
            r"|\$\{IFS\}|\$IFS(?-u:\b)"
        ),
    },
    Rule {
        id: "shell_chained_command",
        description: "a shell command chained onto the argument",
        pattern: r"[;&|]\s*(?:sudo\s+)?(?:rm\s+-[A-Za-z]*[rRf]|(?:curl|wget)\s[^;&|\n]{0,200}(?:https?|ftp)://|(?:nc|ncat|netcat|socat|telnet)\s[^;&|\n]{0,100}[0-9]|(?:ba|z|k|da)?sh\s+-[A-Za-z]*c|(?:python[0-9.]*|perl|ruby|php|node)\s+-[cerE]\s|chmod\s+(?:[0-7]{3,4}|[ugoa]*\+[rwxs]+)\s|mkfifo\s|/bin/(?:ba|z|k|da)?sh(?-u:\b)|base64\s+(?:-d|--decode)(?-u:\b)|whoami(?-u:\b)|eval\s)",
    },
    Rule {
        id: "shell_pipe_to_shell",
        description: "output piped into a shell",
        pattern: r"\|\s*(?:sudo\s+(?:-[A-Za-z]+\s+)*)?(?:/usr)?(?:/bin/)?(?:ba|z|k|da)?sh(?:\s+-[A-Za-z]+)*\s*(?:$|[;&)])",
    },
    Rule {
        id: "shell_reverse_shell",
        description: "a reverse shell",
        pattern: r"/dev/(?:tcp|udp)/[^/\s]+/[0-9]+|(?:nc|ncat|netcat)\s+(?:-[A-Za-z]+\s+(?:[0-9]+\s+)?)*-[A-Za-z]*[ec]\s*(?:/usr)?(?:/bin/)?(?:ba)?sh(?-u:\b)|(?:ba|z)?sh\s+-i\s*[<>]&|mkfifo\s+/tmp/[^\s;]*\s*;",
    },
    Rule {
        id: "shell_destructive",
        description: "a destructive shell command",
        pattern: r"rm\s+(?:-[A-Za-z-]+\s+)*-[A-Za-z]*(?:r[A-Za-z]*f|f[A-Za-z]*r)[A-Za-z]*\s+(?:-[A-Za-z-]+\s+)*(?:/\*?|~/?|\*|\$HOME/?)(?:\s|$|;|&)|--no-preserve-root|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:|mkfs(?:\.[a-z0-9]+)?\s+/dev/|(?-u:\b)dd\s[^\n]{0,100}of=/dev/(?:sd|hd|nvme|xvd|vd|disk|mmcblk)",
    },
];

/// The built-in redactions, applied in this order (before the operator's own).
pub const REDACT: &[Redaction] = &[
    // a PEM private key block
    Redaction {
        id: "private_key",
        pattern: PRIVATE_KEY_BLOCK,
        validate: None,
    },
    // an AWS access key id
    Redaction {
        id: "aws_access_key_id",
        pattern: AWS_ACCESS_KEY_ID,
        validate: None,
    },
    // a GitHub token
    Redaction {
        id: "github_token",
        pattern: GITHUB_TOKEN,
        validate: None,
    },
    // a GitLab token
    Redaction {
        id: "gitlab_token",
        pattern: GITLAB_TOKEN,
        validate: None,
    },
    // a Slack token or webhook URL
    Redaction {
        id: "slack_token",
        pattern: SLACK_TOKEN,
        validate: None,
    },
    // a Google API key or OAuth credential
    Redaction {
        id: "google_credential",
        pattern: GOOGLE_CREDENTIAL,
        validate: None,
    },
    // a Stripe secret key
    Redaction {
        id: "stripe_secret_key",
        pattern: STRIPE_SECRET_KEY,
        validate: None,
    },
    // an OpenAI API key
    Redaction {
        id: "openai_api_key",
        pattern: OPENAI_API_KEY,
        validate: None,
    },
    // an Anthropic API key
    Redaction {
        id: "anthropic_api_key",
        pattern: ANTHROPIC_API_KEY,
        validate: None,
    },
    // a payment card number
    Redaction {
        id: "card_number",
        // 4-4-4-4 digits, Amex 4-6-5, Diners 4-6-4 (spaces or dashes between groups), or
        // 13-19 digits in a row; `is_card_number` then checks issuer prefix, length and the
        // Luhn digit.
        pattern: r"(?-u:\b)(?:[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}|3[47][0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{5}|3(?:0[0-5]|[689][0-9])[0-9][ -]?[0-9]{6}[ -]?[0-9]{4}|[0-9]{13,19})(?-u:\b)",
        validate: Some(is_card_number),
    },
    // an e-mail address
    Redaction {
        id: "email",
        pattern: r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?-u:\b)",
        validate: None,
    },
    // a US social security number
    Redaction {
        id: "us_ssn",
        pattern: r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
        validate: Some(is_us_ssn),
    },
];

/// The built-in deny rule with this id.
/// Whether a built-in deny rule applies without being asked for. The secrets rules,
/// `sensitive_path`, `shell_destructive` and `shell_reverse_shell` do: a credential, a
/// system secret, `rm -rf /` or `/dev/tcp/…` in an argument is never routine. The SQL
/// rules, the other shell rules and `path_traversal` do not: they fire on the routine work
/// of coding agents (a build script with `&& make`, `curl … | sh`, a migration with two
/// statements, `../data/file.txt`), and are switched on (`enabled_rules`) where a tool's
/// arguments should hold no SQL, shell or `..`.
pub fn on_by_default(id: &str) -> bool {
    !(id == "path_traversal"
        || id.starts_with("sql_")
        || matches!(
            id,
            "shell_substitution" | "shell_chained_command" | "shell_pipe_to_shell"
        ))
}

/// The built-in deny rules an `enabled_rules` entry names: an id, or a prefix ending in
/// `*` (`sql_*`, `shell_*`, `*`).
pub fn matching(entry: &str) -> impl Iterator<Item = &'static Rule> + '_ {
    DENY.iter().filter(move |r| match entry.strip_suffix('*') {
        Some(prefix) => r.id.starts_with(prefix),
        None => r.id == entry,
    })
}

pub fn deny_rule(id: &str) -> Option<&'static Rule> {
    DENY.iter().find(|r| r.id == id)
}

/// The built-in redaction with this id.
pub fn redaction(id: &str) -> Option<&'static Redaction> {
    REDACT.iter().find(|r| r.id == id)
}

/// The Luhn (mod 10) check over the ASCII digits of `s`; other characters are skipped.
pub fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for b in s.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// A card number: an issuer prefix with a length that issuer uses, and a valid Luhn digit.
/// Numbers that merely look long (order ids, millisecond timestamps, which start with `1`)
/// are not cards.
pub fn is_card_number(s: &str) -> bool {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let len = digits.len();
    let prefix = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let issuer_length_ok = match digits.first() {
        // Visa
        Some(4) => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55 (and Maestro 50, 56-59)
        Some(5) => match prefix(2) {
            51..=55 => len == 16,
            _ => (12..=19).contains(&len),
        },
        // Mastercard 2221-2720
        Some(2) => len == 16 && (2221..=2720).contains(&prefix(4)),
        // Amex 34/37, JCB 3528-3589, Diners 300-305/36/38/39
        Some(3) => match prefix(2) {
            34 | 37 => len == 15,
            35 => (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len),
            30 | 36 | 38 | 39 => (14..=19).contains(&len),
            _ => false,
        },
        // Discover, UnionPay, Maestro
        Some(6) => (16..=19).contains(&len),
        _ => false,
    };
    issuer_length_ok && luhn(s)
}

/// A US social security number `AAA-GG-SSSS` in the issued ranges: area not 000, 666 or
/// 900-999, group not 00, serial not 0000.
pub fn is_us_ssn(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}
