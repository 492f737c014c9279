//! Tool arguments to Cedar values, built along the tool's declared type and never through
//! Cedar's JSON parser: arguments are caller-controlled, and Cedar's JSON reads
//! `{"__extn": ..}` and `{"__entity": ..}` as extension values and entity references. Here
//! every string is a string, undeclared keys are dropped (no policy can name them) — or,
//! where the schema says `additionalProperties: false` or the operator refuses undeclared
//! arguments, deny the call (the backend would get what Cedar never saw) — and a value
//! that does not fit its declared type is a denial with a reason.

use cedar_policy::RestrictedExpression;
use serde_json::{Map, Number, Value};

use super::argtype::{ArgType, DECIMAL_DIGITS, RecordType};

/// Why arguments were refused; the text quotes the argument's path, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArgumentError {
    #[error("argument `{path}` must be {expected}")]
    Mismatch {
        path: String,
        expected: &'static str,
    },
    #[error("argument `{path}` is required")]
    Missing { path: String },
    #[error("argument `{path}` is out of range for a cedar value")]
    Range { path: String },
    #[error("argument `{path}` is not declared by the tool's schema")]
    Undeclared { path: String },
}

/// Converts the arguments of a call to the `context.arguments` record.
pub(crate) fn arguments_value(
    ty: &RecordType,
    args: &Map<String, Value>,
) -> Result<RestrictedExpression, ArgumentError> {
    record_value(ty, args, "")
}

/// The dotted path of member `name` under `prefix` (as refusals quote it).
pub(crate) fn member_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A closed record refuses any member it does not declare.
pub(crate) fn refuse_undeclared<'k>(
    ty: &RecordType,
    mut names: impl Iterator<Item = &'k String>,
    prefix: &str,
) -> Result<(), ArgumentError> {
    if !ty.closed {
        return Ok(());
    }
    match names.find(|k| !ty.declared.contains(*k)) {
        Some(name) => Err(ArgumentError::Undeclared {
            path: member_path(prefix, name),
        }),
        None => Ok(()),
    }
}

fn record_value(
    ty: &RecordType,
    object: &Map<String, Value>,
    prefix: &str,
) -> Result<RestrictedExpression, ArgumentError> {
    refuse_undeclared(ty, object.keys(), prefix)?;
    let mut pairs = Vec::with_capacity(ty.fields.len());
    for (name, field) in &ty.fields {
        let path = member_path(prefix, name);
        match object.get(name) {
            Some(value) => pairs.push((name.clone(), value_of(&field.ty, value, &path)?)),
            None if field.required => return Err(ArgumentError::Missing { path }),
            None => {}
        }
    }
    // Field names are unique (they come from a map), so this cannot fail; a failure would
    // still be reported as a refusal, never an allow.
    RestrictedExpression::new_record(pairs).map_err(|_| ArgumentError::Mismatch {
        path: prefix.to_owned(),
        expected: "an object",
    })
}

pub(crate) fn value_of(
    ty: &ArgType,
    value: &Value,
    path: &str,
) -> Result<RestrictedExpression, ArgumentError> {
    let mismatch = || ArgumentError::Mismatch {
        path: path.to_owned(),
        expected: ty.describe(),
    };
    match (ty, value) {
        (ArgType::String, Value::String(s)) => Ok(RestrictedExpression::new_string(s.clone())),
        (ArgType::Bool, Value::Bool(b)) => Ok(RestrictedExpression::new_bool(*b)),
        (ArgType::Long, Value::Number(n)) => match integer(n) {
            Some(Ok(i)) => Ok(RestrictedExpression::new_long(i)),
            Some(Err(())) => Err(ArgumentError::Range {
                path: path.to_owned(),
            }),
            None => Err(mismatch()),
        },
        (ArgType::Decimal, Value::Number(n)) => match decimal_text(n) {
            Some(text) => Ok(RestrictedExpression::new_decimal(text)),
            None => Err(mismatch()),
        },
        (ArgType::Set(element), Value::Array(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push(value_of(element, item, path).map_err(|_| mismatch())?);
            }
            Ok(RestrictedExpression::new_set(values))
        }
        (ArgType::Record(record), Value::Object(object)) => record_value(record, object, path),
        _ => Err(mismatch()),
    }
}

/// An integer JSON value: `Some(Ok)` within 64 bits, `Some(Err)` for an integer beyond them,
/// `None` for a value with a fraction (JSON Schema counts `2.0` as an integer).
fn integer(n: &Number) -> Option<Result<i64, ()>> {
    if let Some(i) = n.as_i64() {
        return Some(Ok(i));
    }
    if n.is_u64() {
        return Some(Err(()));
    }
    let f = n.as_f64()?;
    if f.fract() != 0.0 || !f.is_finite() {
        return None;
    }
    // Beyond 2^53 a float no longer names one integer exactly.
    if f.abs() <= 9_007_199_254_740_992.0 {
        Some(Ok(f as i64))
    } else {
        Some(Err(()))
    }
}

/// The Cedar decimal literal (`"-12.3400"`) of a JSON number, if it has at most four
/// fraction digits and fits Cedar's 64-bit decimal; `None` otherwise.
pub(crate) fn decimal_text(n: &Number) -> Option<String> {
    // serde_json prints floats in their shortest round-trip form, the digits the sender meant.
    let text = n.to_string();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits * 10^(exponent - frac_len); scale to units of 10^-4.
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    let shift = exponent
        .checked_sub(frac_len)?
        .checked_add(DECIMAL_DIGITS as i32)?;
    let digits = digits.trim_start_matches('0');
    let mut units: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    if shift >= 0 {
        for _ in 0..shift {
            units = units.checked_mul(10)?;
            if units > i128::from(i64::MAX) + 1 {
                return None;
            }
        }
    } else {
        for _ in 0..(-shift) {
            if units == 0 {
                break;
            }
            if units % 10 != 0 {
                return None;
            }
            units /= 10;
        }
    }
    let units = if negative { -units } else { units };
    let units = i64::try_from(units).ok()?;
    let scale = 10_i64.pow(DECIMAL_DIGITS);
    let sign = if units < 0 { "-" } else { "" };
    let whole = (units / scale).unsigned_abs();
    let frac = (units % scale).unsigned_abs();
    Some(format!("{sign}{whole}.{frac:04}"))
}

#[cfg(test)]
mod tests;
