//! Conditions over event fields, the `when` of a sampling rule, and their parser.
//!
//! ```text
//! http.status_code >= 500        compare a field with a value: = (or ==) != > >= < <=
//! http.route = "/health"         strings in double or single quotes ('/health')
//! duration_ms > 1000             numbers: integers or decimals, 1e3 too
//! error = true                   booleans: true, false
//! error                          a bare field name means `= true`
//! user.id exists                 present and not null
//! user.id not exists             missing or null
//! `odd name` = 1                 backticks around a field name with spaces or operators
//! a = 1 and b != "x"             `and` joins conditions; a rule's list of strings does too
//! ```
//!
//! Comparisons are typed, never coerced: numbers compare numerically across ints and floats,
//! strings compare with strings (byte order), booleans with booleans (`=` and `!=` only). A
//! value of another type does not match (`!=` does: a different type is never equal). A missing
//! or `null` field matches only `not exists`, like SQL's `NULL`, and like Refinery's rules.
//! Reserved fields have a known type ([`loupe_event::fields::reserved_kind`]), so comparing
//! `http.status_code` with a string, or `error` with a number, is rejected when parsed rather
//! than silently never matching.
//!
//! Errors name the problem and the 1-based character column where it starts:
//! `">= 500": expected a field name, found `>=` at column 1`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use loupe_event::fields::{ReservedKind, reserved_kind};
use loupe_event::{Event, Value};

use crate::error::PredicateError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// The value side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Literal {
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Literal::Int(i) => Some(i as f64),
            Literal::Float(f) => Some(f),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Literal::Int(_) | Literal::Float(_) => "a number",
            Literal::Bool(_) => "a boolean",
            Literal::Str(_) => "a string",
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        '\r' => f.write_str("\\r")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

/// What a condition checks of its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    NotExists,
    Compare(CmpOp, Literal),
}

/// One condition: a field and a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub test: Test,
}

impl Condition {
    /// Whether `event` satisfies this condition (see the module doc). Does not allocate.
    pub fn matches(&self, event: &Event) -> bool {
        let value = match event.get(&self.field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        };
        match (&self.test, value) {
            (Test::Exists, v) => v.is_some(),
            (Test::NotExists, v) => v.is_none(),
            (Test::Compare(..), None) => false,
            (Test::Compare(op, literal), Some(v)) => match compare(v, literal) {
                Some(ord) => op.holds(ord),
                None => *op == CmpOp::Ne,
            },
        }
    }
}

fn compare(value: &Value, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (Value::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (Value::Int(_) | Value::Float(_), Literal::Int(_) | Literal::Float(_)) => {
            value.as_f64()?.partial_cmp(&literal.as_f64()?)
        }
        (Value::Str(a), Literal::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = !self.field.is_empty()
            && self.field.chars().all(is_word_char)
            && !is_keyword(&self.field);
        if bare {
            f.write_str(&self.field)?;
        } else {
            write!(f, "`{}`", self.field)?;
        }
        match &self.test {
            Test::Exists => f.write_str(" exists"),
            Test::NotExists => f.write_str(" not exists"),
            Test::Compare(op, lit) => write!(f, " {} {lit}", op.as_str()),
        }
    }
}

impl FromStr for Condition {
    type Err = PredicateError;

    /// Exactly one condition (no `and`).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let tokens = lex(input)?;
        let mut parser = Parser {
            input,
            tokens: &tokens,
            pos: 0,
        };
        let condition = parser.condition()?;
        if let Some(t) = parser.peek() {
            return Err(parser.error(t.column, "expected the end of the condition"));
        }
        Ok(condition)
    }
}

/// Parses conditions joined by `and`; an event must satisfy all of them.
pub fn parse_conditions(input: &str) -> Result<Vec<Condition>, PredicateError> {
    let tokens = lex(input)?;
    let mut parser = Parser {
        input,
        tokens: &tokens,
        pos: 0,
    };
    let mut out = vec![parser.condition()?];
    while let Some(t) = parser.next() {
        match &t.kind {
            Tok::Word(w) if w.eq_ignore_ascii_case("and") => out.push(parser.condition()?),
            _ => {
                return Err(parser.error(
                    t.column,
                    format!(
                        "expected `and` or the end of the condition, found {}",
                        t.kind
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Backticked(String),
    Op(CmpOp),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Quoted(s) => write!(f, "the string {}", Literal::Str(s.clone())),
            Tok::Backticked(s) => write!(f, "`{s}`"),
            Tok::Op(op) => write!(f, "`{}`", op.as_str()),
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    /// 1-based character column.
    column: usize,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '=' | '!' | '<' | '>' | '"' | '\'' | '`')
}

fn is_keyword(w: &str) -> bool {
    ["and", "not", "exists", "true", "false"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

fn lex(input: &str) -> Result<Vec<Token>, PredicateError> {
    let err = |column: usize, message: String| PredicateError {
        input: input.to_owned(),
        column,
        message,
    };
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (kind, len) = match (c, next) {
            ('=', Some('=')) => (Tok::Op(CmpOp::Eq), 2),
            ('=', _) => (Tok::Op(CmpOp::Eq), 1),
            ('!', Some('=')) => (Tok::Op(CmpOp::Ne), 2),
            ('!', _) => {
                return Err(err(
                    column,
                    "unexpected `!` (did you mean `!=`, or `not exists`?)".into(),
                ));
            }
            ('<', Some('=')) => (Tok::Op(CmpOp::Le), 2),
            ('<', Some('>')) => (Tok::Op(CmpOp::Ne), 2),
            ('<', _) => (Tok::Op(CmpOp::Lt), 1),
            ('>', Some('=')) => (Tok::Op(CmpOp::Ge), 2),
            ('>', _) => (Tok::Op(CmpOp::Gt), 1),
            ('"' | '\'' | '`', _) => {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            let what = if c == '`' { "field name" } else { "string" };
                            return Err(err(
                                column,
                                format!("unterminated {what}: no closing {c}"),
                            ));
                        }
                        Some(&q) if q == c => break,
                        Some('\\') if c != '`' => {
                            let escaped = match chars.get(j + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some(&e @ ('\\' | '"' | '\'')) => e,
                                Some(e) => {
                                    // Point at the backslash.
                                    return Err(err(
                                        j + 1,
                                        format!(
                                            "unknown escape `\\{e}` (known: \\\" \\' \\\\ \\n \\t \\r)"
                                        ),
                                    ));
                                }
                                None => {
                                    return Err(err(
                                        column,
                                        format!("unterminated string: no closing {c}"),
                                    ));
                                }
                            };
                            text.push(escaped);
                            j += 2;
                            continue;
                        }
                        Some(&ch) => text.push(ch),
                    }
                    j += 1;
                }
                let kind = if c == '`' {
                    Tok::Backticked(text)
                } else {
                    Tok::Quoted(text)
                };
                (kind, j + 1 - i)
            }
            _ => {
                let len = chars[i..]
                    .iter()
                    .take_while(|&&ch| is_word_char(ch))
                    .count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
        };
        tokens.push(Token { kind, column });
        i += len;
    }
    Ok(tokens)
}

struct Parser<'a> {
    input: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// The column just past the input, for "expected ... at the end".
    fn end_column(&self) -> usize {
        self.input.chars().count() + 1
    }

    fn error(&self, column: usize, message: impl Into<String>) -> PredicateError {
        PredicateError {
            input: self.input.to_owned(),
            column,
            message: message.into(),
        }
    }

    fn condition(&mut self) -> Result<Condition, PredicateError> {
        let field = match self.next() {
            None => return Err(self.error(self.end_column(), "expected a field name")),
            Some(Token {
                kind: Tok::Word(w),
                column,
            }) => {
                if is_keyword(w) {
                    return Err(self.error(
                        *column,
                        format!("expected a field name, found the keyword `{w}` (write `{w}` in backticks for a field of that name)"),
                    ));
                }
                w.clone()
            }
            Some(Token {
                kind: Tok::Backticked(w),
                column,
            }) => {
                if w.is_empty() {
                    return Err(self.error(*column, "expected a field name, found ``"));
                }
                w.clone()
            }
            Some(Token {
                kind: kind @ Tok::Quoted(_),
                column,
            }) => {
                return Err(self.error(
                    *column,
                    format!("expected a field name, found {kind} (field names take backticks, not quotes)"),
                ));
            }
            Some(t) => {
                return Err(
                    self.error(t.column, format!("expected a field name, found {}", t.kind))
                );
            }
        };
        let field_column = self.tokens[self.pos - 1].column;
        let bare = match self.peek() {
            None => true,
            Some(Token {
                kind: Tok::Word(w), ..
            }) => w.eq_ignore_ascii_case("and"),
            Some(_) => false,
        };
        let test = match self.peek() {
            // A bare field name: `error` means `error = true`.
            _ if bare => Test::Compare(CmpOp::Eq, Literal::Bool(true)),
            None => Test::Compare(CmpOp::Eq, Literal::Bool(true)),
            Some(Token {
                kind: Tok::Word(w), ..
            }) if w.eq_ignore_ascii_case("exists") => {
                self.pos += 1;
                Test::Exists
            }
            Some(Token {
                kind: Tok::Word(w), ..
            }) if w.eq_ignore_ascii_case("not") => {
                self.pos += 1;
                match self.next() {
                    Some(Token {
                        kind: Tok::Word(w), ..
                    }) if w.eq_ignore_ascii_case("exists") => Test::NotExists,
                    Some(t) => {
                        return Err(self.error(
                            t.column,
                            format!("expected `exists` after `not`, found {}", t.kind),
                        ));
                    }
                    None => {
                        return Err(self.error(self.end_column(), "expected `exists` after `not`"));
                    }
                }
            }
            Some(Token {
                kind: Tok::Op(op),
                column,
            }) => {
                let (op, op_column) = (*op, *column);
                self.pos += 1;
                let literal = self.literal(op)?;
                if op.is_ordering() && matches!(literal, Literal::Bool(_)) {
                    return Err(self.error(
                        op_column,
                        format!("`{}` does not apply to booleans; use = or !=", op.as_str()),
                    ));
                }
                Test::Compare(op, literal)
            }
            Some(t) => {
                return Err(self.error(
                    t.column,
                    format!("expected an operator (= != > >= < <=), `exists` or `not exists` after the field name, found {}", t.kind),
                ));
            }
        };
        self.check_reserved_type(&field, field_column, &test, bare)?;
        Ok(Condition { field, test })
    }

    fn literal(&mut self, op: CmpOp) -> Result<Literal, PredicateError> {
        let Some(t) = self.next() else {
            return Err(self.error(
                self.end_column(),
                format!("expected a value after `{}`", op.as_str()),
            ));
        };
        match &t.kind {
            Tok::Quoted(s) => Ok(Literal::Str(s.clone())),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Tok::Word(w) => parse_number(w).ok_or_else(|| {
                let hint = if looks_numeric(w) {
                    format!("`{w}` is not a number")
                } else {
                    format!("found `{w}`")
                };
                self.error(
                    t.column,
                    format!("expected a value (a number, true, false or a quoted string): {hint}; to compare with the text, write \"{w}\""),
                )
            }),
            other => Err(self.error(
                t.column,
                format!("expected a value (a number, true, false or a quoted string), found {other}"),
            )),
        }
    }

    /// Rejects comparisons that can never match a reserved field of a known type.
    fn check_reserved_type(
        &self,
        field: &str,
        column: usize,
        test: &Test,
        bare: bool,
    ) -> Result<(), PredicateError> {
        let (Some(kind), Test::Compare(_, literal)) = (reserved_kind(field), test) else {
            return Ok(());
        };
        let fits = match kind {
            ReservedKind::Number | ReservedKind::Int => {
                matches!(literal, Literal::Int(_) | Literal::Float(_))
            }
            ReservedKind::Bool => matches!(literal, Literal::Bool(_)),
            ReservedKind::Str => matches!(literal, Literal::Str(_)),
        };
        if fits {
            return Ok(());
        }
        let message = if bare {
            format!(
                "a bare field name means `{field} = true`, but `{field}` holds {} values",
                kind.as_str()
            )
        } else {
            format!(
                "`{field}` holds {} values, so comparing it with {} never matches",
                kind.as_str(),
                literal.type_name()
            )
        };
        Err(self.error(column, message))
    }
}

fn looks_numeric(w: &str) -> bool {
    let mut chars = w.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('-' | '+' | '.') => chars.next().is_some_and(|c| c.is_ascii_digit() || c == '.'),
        _ => false,
    }
}

fn parse_number(w: &str) -> Option<Literal> {
    if !looks_numeric(w) {
        return None;
    }
    if let Ok(i) = w.parse::<i64>() {
        return Some(Literal::Int(i));
    }
    match w.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Literal::Float(f)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(s: &str) -> Condition {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> PredicateError {
        parse_conditions(s).expect_err(s)
    }

    #[test]
    fn parses_the_forms() {
        assert_eq!(
            cond("http.status_code >= 500"),
            Condition {
                field: "http.status_code".into(),
                test: Test::Compare(CmpOp::Ge, Literal::Int(500)),
            }
        );
        assert_eq!(
            cond("error").test,
            Test::Compare(CmpOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            cond("error == false").test,
            Test::Compare(CmpOp::Eq, Literal::Bool(false))
        );
        assert_eq!(
            cond("http.route='/health'").test,
            Test::Compare(CmpOp::Eq, Literal::Str("/health".into()))
        );
        assert_eq!(
            cond("x <> \"a\\\"b\"").test,
            Test::Compare(CmpOp::Ne, Literal::Str("a\"b".into()))
        );
        assert_eq!(
            cond("duration_ms > 1e3").test,
            Test::Compare(CmpOp::Gt, Literal::Float(1000.0))
        );
        assert_eq!(
            cond("d <= -2.5").test,
            Test::Compare(CmpOp::Le, Literal::Float(-2.5))
        );
        assert_eq!(cond("user.id exists").test, Test::Exists);
        assert_eq!(cond("user.id NOT exists").test, Test::NotExists);
        assert_eq!(cond("`odd name` < 3").field, "odd name");
        let all = parse_conditions("error and http.route = \"/x\" AND n exists").unwrap();
        assert_eq!(all.len(), 3);
        // Display gives back a parseable canonical form.
        for c in all
            .iter()
            .chain([&cond("`and` = 'x\\ny'"), &cond("f != 1.0")])
        {
            assert_eq!(&cond(&c.to_string()), c, "{c}");
        }
    }

    #[test]
    fn errors_name_the_problem_and_column() {
        let e = err(">= 500");
        assert_eq!(e.column, 1);
        assert!(e.message.starts_with("expected a field name"), "{e}");
        assert_eq!(
            e.to_string(),
            "\">= 500\": expected a field name, found `>=` at column 1"
        );
        let e = err("http.status_code >=");
        assert_eq!(
            (e.column, e.message.as_str()),
            (20, "expected a value after `>=`")
        );
        let e = err("http.method = GET");
        assert_eq!(e.column, 15);
        assert!(e.message.contains("write \"GET\""), "{e}");
        assert_eq!(err("a = 5xx").column, 5);
        assert!(err("a = 5xx").message.contains("`5xx` is not a number"));
        assert_eq!(err("a = \"open").column, 5);
        assert_eq!(err("a ! 1").column, 3);
        assert_eq!(err("a not 1").column, 7);
        assert_eq!(err("a 1").column, 3);
        assert_eq!(err("a = 1 b = 2").column, 7);
        assert_eq!(err("a = 1 and").column, 10);
        assert_eq!(err("").column, 1);
        assert_eq!(err("\"a\" = 1").column, 1);
        assert_eq!(err("ok > true").column, 4);
        assert_eq!(err("a = 'x\\q'").column, 7);
        // Columns count characters, not bytes.
        assert_eq!(err("é = GET").column, 5);
    }

    #[test]
    fn any_input_parses_or_errors_without_panicking() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let pieces = [
            "a", "é", " ", "=", "!", "<", ">", "\"", "'", "`", "\\", "and", "not", "exists",
            "true", "1", "-", ".", "e", "5xx", "\u{85}",
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let n = rng.random_range(0..12);
            let s: String = (0..n)
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            match parse_conditions(&s) {
                Ok(cs) => {
                    for c in cs {
                        // The canonical form parses back to the same condition.
                        assert_eq!(c.to_string().parse::<Condition>().as_ref(), Ok(&c), "{s:?}");
                    }
                }
                Err(e) => assert!(
                    e.column >= 1 && e.column <= s.chars().count() + 1,
                    "{s:?}: {e}"
                ),
            }
        }
    }

    #[test]
    fn reserved_fields_are_type_checked() {
        let e = err("http.status_code = \"500\"");
        assert_eq!(e.column, 1);
        assert!(e.message.contains("holds int values"), "{e}");
        assert!(err("error = 1").message.contains("holds bool values"));
        assert!(
            err("duration_ms > \"1000\"")
                .message
                .contains("holds number values")
        );
        assert!(err("http.status_code").message.contains("bare field name"));
        assert!(parse_conditions("duration_ms > 1000.5").is_ok());
        assert!(parse_conditions("http.status_code >= 499.5").is_ok());
    }

    #[test]
    fn comparisons_are_typed() {
        let e = Event::new()
            .with("n", 500)
            .with("f", 2.5)
            .with("s", "abc")
            .with("b", true)
            .with("nul", Value::Null)
            .with("str_num", "500");
        let m = |s: &str| parse_conditions(s).unwrap().iter().all(|c| c.matches(&e));
        assert!(m("n >= 500") && m("n > 499.5") && m("n = 500.0") && !m("n > 500"));
        assert!(m("f < 3") && m("f > 2") && m("f = 2.5") && !m("f = 2"));
        assert!(m("s = 'abc'") && m("s < 'abd'") && m("s >= 'ab'") && !m("s = 'ABC'"));
        assert!(m("b") && m("b = true") && m("b != false") && !m("b = false"));
        // No coercion: the string "500" is not the number 500, and differs from it.
        assert!(!m("str_num = 500") && !m("str_num > 1") && m("str_num != 500"));
        assert!(!m("n = '500'") && m("n != '500'"));
        // Missing and null fields match only `not exists`.
        for f in ["missing", "nul"] {
            assert!(m(&format!("{f} not exists")));
            assert!(!m(&format!("{f} exists")));
            assert!(!m(&format!("{f} = 1")) && !m(&format!("{f} != 1")));
        }
        assert!(m("n exists and s exists") && !m("n exists and missing exists"));
    }
}
