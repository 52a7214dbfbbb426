//! The text form of expressions: what [`Expr`]'s `Display` prints, parsed back.
//!
//! `title == "x" and words > 10`, `lower(title)`, `if(a > 1, "big", "small")`,
//! `cast(n as String)`, `errortype(summary) is not null`, `ts >= timestamp '2024-05-01T00:00:00Z'`.
//! Precedence, loosest first: `as`; `or`; `and`; `not`; comparisons (which do not chain);
//! `is [not] null`; `+ -`; `* / %`; unary `-`. UDF calls (`summarize@1(text)`) are printed but
//! not parsed: a UDF's types and code live in the application.

use super::{BinaryOp, ErrorPart, Expr, Func, UnaryOp};
use crate::error::{err, Result};
use crate::types::{parse_date, parse_timestamp, ColumnType, Value};

/// Words that are operators or values, so never column names in the text form.
pub(crate) const RESERVED: [&str; 8] = ["and", "or", "not", "is", "null", "true", "false", "as"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Int(u64),
    Float(f64),
    /// `"..."` with Rust's escapes.
    Str(String),
    /// `'...'`: the text of a typed literal (`date '...'`, `x'...'`).
    Quoted(String),
    Sym(&'static str),
}

const SYMBOLS: [&str; 16] = ["==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", "@", "="];

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn tokens(text: &str) -> std::result::Result<Vec<(usize, Token)>, (usize, String)> {
        let mut lx = Lexer { text, pos: 0 };
        let mut out = Vec::new();
        while let Some(c) = lx.skip_space() {
            let at = lx.pos;
            let token = if c.is_ascii_alphabetic() || c == '_' {
                let word = lx.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                Token::Ident(word.to_string())
            } else if c.is_ascii_digit() {
                lx.number()?
            } else if c == '"' {
                Token::Str(lx.string()?)
            } else if c == '\'' {
                Token::Quoted(lx.quoted()?)
            } else if let Some(sym) = SYMBOLS.iter().find(|s| lx.rest().starts_with(*s)) {
                lx.pos += sym.len();
                if *sym == "=" {
                    return Err((at, "'=' is not an operator; compare with '=='".into()));
                }
                Token::Sym(sym)
            } else {
                return Err((at, format!("unexpected {c:?}")));
            };
            out.push((at, token));
        }
        Ok(out)
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) -> Option<char> {
        self.take_while(char::is_whitespace);
        self.rest().chars().next()
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        let len = self.rest().find(|c: char| !f(c)).unwrap_or(self.rest().len());
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn number(&mut self) -> std::result::Result<Token, (usize, String)> {
        let at = self.pos;
        self.take_while(|c| c.is_ascii_digit());
        let mut float = false;
        if self.rest().starts_with('.') && self.rest()[1..].starts_with(|c: char| c.is_ascii_digit()) {
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
            float = true;
        }
        if self.rest().starts_with(['e', 'E']) {
            let mut end = 1;
            if self.rest()[1..].starts_with(['+', '-']) {
                end += 1;
            }
            if self.rest()[end..].starts_with(|c: char| c.is_ascii_digit()) {
                self.pos += end;
                self.take_while(|c| c.is_ascii_digit());
                float = true;
            }
        }
        let text = &self.text[at..self.pos];
        if float {
            text.parse().map(Token::Float).map_err(|_| (at, format!("{text} is not a number")))
        } else {
            text.parse().map(Token::Int).map_err(|_| (at, format!("{text} is too large for an Int")))
        }
    }

    /// A `"..."` string with the escapes Rust's `Debug` writes.
    fn string(&mut self) -> std::result::Result<String, (usize, String)> {
        let at = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let escaped = match chars.next().map(|(_, c)| c) {
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('0') => '\0',
                        Some(c @ ('\\' | '"' | '\'')) => c,
                        Some('u') => {
                            let hex: String = chars.by_ref().map(|(_, c)| c).take_while(|c| *c != '}').collect();
                            hex.strip_prefix('{')
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| (at, format!("bad escape \\u{hex}}} in a string")))?
                        }
                        other => return Err((at, format!("unknown escape \\{} in a string", other.unwrap_or(' ')))),
                    };
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
        Err((at, "a string is not closed (missing '\"')".into()))
    }

    /// A `'...'` text, `''` standing for one quote.
    fn quoted(&mut self) -> std::result::Result<String, (usize, String)> {
        let at = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(end) = self.rest().find('\'') else {
                return Err((at, "a quoted literal is not closed (missing \"'\")".into()));
            };
            out.push_str(&self.rest()[..end]);
            self.pos += end + 1;
            if self.rest().starts_with('\'') {
                out.push('\'');
                self.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    next: usize,
}

type Parsed<T> = std::result::Result<T, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.next).map_or(self.text.len(), |(at, _)| *at)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).map(|(_, t)| t.clone());
        self.next += 1;
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token::Sym(s)) if *s == sym)
    }

    fn expect_sym(&mut self, sym: &str) -> Parsed<()> {
        if self.is_sym(sym) {
            self.next += 1;
            Ok(())
        } else {
            Err((self.at(), format!("expected '{sym}', found {}", self.found())))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(Token::Ident(w)) => format!("'{w}'"),
            Some(Token::Int(i)) => format!("{i}"),
            Some(Token::Float(x)) => format!("{x:?}"),
            Some(Token::Str(s)) => format!("{s:?}"),
            Some(Token::Quoted(s)) => format!("'{s}'"),
            Some(Token::Sym(s)) => format!("'{s}'"),
        }
    }

    /// `expr [as name]`.
    fn top(&mut self) -> Parsed<Expr> {
        let expr = self.level(1)?;
        if self.is_word("as") {
            self.next += 1;
            let name = self.name("an output name after 'as'")?;
            return Ok(Expr::Alias { expr: Box::new(expr), name });
        }
        Ok(expr)
    }

    fn name(&mut self, what: &str) -> Parsed<String> {
        match self.peek() {
            Some(Token::Ident(w)) if !RESERVED.contains(&w.as_str()) => {
                let w = w.clone();
                self.next += 1;
                Ok(w)
            }
            _ => Err((self.at(), format!("expected {what}, found {}", self.found()))),
        }
    }

    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match self.peek()? {
            Token::Ident(w) if w == "or" => BinaryOp::Or,
            Token::Ident(w) if w == "and" => BinaryOp::And,
            Token::Sym("==") => BinaryOp::Eq,
            Token::Sym("!=") => BinaryOp::Ne,
            Token::Sym("<") => BinaryOp::Lt,
            Token::Sym("<=") => BinaryOp::Le,
            Token::Sym(">") => BinaryOp::Gt,
            Token::Sym(">=") => BinaryOp::Ge,
            Token::Sym("+") => BinaryOp::Add,
            Token::Sym("-") => BinaryOp::Sub,
            Token::Sym("*") => BinaryOp::Mul,
            Token::Sym("/") => BinaryOp::Div,
            Token::Sym("%") => BinaryOp::Rem,
            _ => return None,
        })
    }

    /// Precedence levels, as `Display` parenthesizes: 1 `or`, 2 `and` (left-associative),
    /// 3 `not`, 4 comparisons (not chained), 5 `is [not] null`, 6 `+ -`, 7 `* / %`
    /// (left-associative), 8 unary minus and primaries.
    fn level(&mut self, level: u8) -> Parsed<Expr> {
        match level {
            3 if self.is_word("not") => {
                self.next += 1;
                let arg = self.level(3)?;
                Ok(Expr::Unary { op: UnaryOp::Not, arg: Box::new(arg) })
            }
            3 => self.level(4),
            4 => {
                let left = self.level(5)?;
                let Some(op) = self.binary_op().filter(|op| op.is_comparison()) else { return Ok(left) };
                self.next += 1;
                let right = self.level(5)?;
                if self.binary_op().is_some_and(BinaryOp::is_comparison) {
                    return Err((self.at(), "comparisons do not chain; join them with 'and'".into()));
                }
                Ok(Expr::Binary { op, left: Box::new(left), right: Box::new(right) })
            }
            5 => {
                let mut arg = self.level(6)?;
                while self.is_word("is") {
                    self.next += 1;
                    let op = if self.is_word("not") {
                        self.next += 1;
                        UnaryOp::IsNotNull
                    } else {
                        UnaryOp::IsNull
                    };
                    if !self.is_word("null") {
                        return Err((self.at(), format!("expected 'null' after 'is', found {}", self.found())));
                    }
                    self.next += 1;
                    arg = Expr::Unary { op, arg: Box::new(arg) };
                }
                Ok(arg)
            }
            1 | 2 | 6 | 7 => {
                let mut left = self.level(level + 1)?;
                while let Some(op) = self.binary_op().filter(|op| op.precedence() == level) {
                    self.next += 1;
                    let right = self.level(level + 1)?;
                    left = Expr::Binary { op, left: Box::new(left), right: Box::new(right) };
                }
                Ok(left)
            }
            _ => self.unary(),
        }
    }

    /// Unary minus and primaries.
    fn unary(&mut self) -> Parsed<Expr> {
        if self.is_sym("-") {
            self.next += 1;
            // A minus before a number is part of the literal (so i64::MIN reads back), but
            // for an Int 0, which has no negative literal.
            match self.peek() {
                Some(Token::Int(i)) if *i != 0 => {
                    let i = *i;
                    self.next += 1;
                    let v = 0i64.checked_sub_unsigned(i).ok_or((self.at(), format!("-{i} is too small for an Int")))?;
                    return Ok(Expr::Literal(Value::Int(v)));
                }
                Some(Token::Float(x)) => {
                    let x = *x;
                    self.next += 1;
                    return Ok(Expr::Literal(Value::Float(-x)));
                }
                _ => {}
            }
            let arg = self.unary()?;
            return Ok(Expr::Unary { op: UnaryOp::Neg, arg: Box::new(arg) });
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let at = self.at();
        let Some(token) = self.bump() else {
            return Err((at, "expected a value, found the end".into()));
        };
        Ok(match token {
            Token::Int(i) => {
                Expr::Literal(Value::Int(i64::try_from(i).map_err(|_| (at, format!("{i} is too large for an Int")))?))
            }
            Token::Float(x) => Expr::Literal(Value::Float(x)),
            Token::Str(s) => Expr::Literal(Value::String(s)),
            Token::Sym("(") => {
                let e = self.level(1)?;
                self.expect_sym(")")?;
                e
            }
            Token::Ident(w) => return self.word(at, w),
            other => {
                self.next -= 1;
                let _ = other;
                return Err((at, format!("expected a value, found {}", self.found())));
            }
        })
    }

    /// What a word starts: a literal, a typed literal, a call or a column.
    fn word(&mut self, at: usize, w: String) -> Parsed<Expr> {
        match w.as_str() {
            "null" => return Ok(Expr::Literal(Value::Null)),
            "true" => return Ok(Expr::Literal(Value::Bool(true))),
            "false" => return Ok(Expr::Literal(Value::Bool(false))),
            _ => {}
        }
        if let Some(Token::Quoted(text)) = self.peek().cloned() {
            let value = match w.as_str() {
                "timestamp" => parse_timestamp(&text).map(Value::Timestamp),
                "date" => parse_date(&text).map(Value::Date),
                "json" => serde_json::from_str(&text).ok().map(Value::Json),
                "x" => hex(&text).map(Value::Bytes),
                _ => {
                    return Err((
                        at,
                        format!("'{w}' before a quoted text; typed literals are timestamp, date, json and x"),
                    ))
                }
            };
            let value = value.ok_or_else(|| {
                let why = match w.as_str() {
                    "timestamp" => "is not an RFC 3339 time (2024-05-01T12:00:00Z)",
                    "date" => "is not a date (YYYY-MM-DD)",
                    "json" => "is not JSON",
                    _ if text.contains("...") => "is shortened (as errors print long bytes); write every byte",
                    _ => "is not hexadecimal bytes",
                };
                (at, format!("{w} '{text}' {why}"))
            })?;
            self.next += 1;
            return Ok(Expr::Literal(value));
        }
        if self.is_sym("@") {
            return Err((
                at,
                format!("'{w}@...' calls a UDF; the text form cannot call UDFs (their code lives in the application)"),
            ));
        }
        if !self.is_sym("(") {
            if RESERVED.contains(&w.as_str()) {
                return Err((at, format!("expected a value, found '{w}'")));
            }
            return Ok(Expr::Column(w));
        }
        self.next += 1;
        let expr = match w.as_str() {
            "if" => {
                let cond = self.level(1)?;
                self.expect_sym(",")?;
                let then = self.level(1)?;
                self.expect_sym(",")?;
                let otherwise = self.level(1)?;
                Expr::If { cond: Box::new(cond), then: Box::new(then), otherwise: Box::new(otherwise) }
            }
            "cast" => {
                let expr = self.level(1)?;
                if !self.is_word("as") {
                    return Err((self.at(), format!("expected 'as' and a type in cast, found {}", self.found())));
                }
                self.next += 1;
                let ty_at = self.at();
                let name = self.name("a type")?;
                let to = column_type(&name).ok_or_else(|| {
                    (ty_at, format!("'{name}' is not a type (Int, Float, Bool, String, Timestamp, Date, Json, Bytes)"))
                })?;
                Expr::Cast { expr: Box::new(expr), to }
            }
            "errortype" | "errormsg" => {
                let column = self.name("a computed column")?;
                let part = if w == "errortype" { ErrorPart::Type } else { ErrorPart::Message };
                Expr::CellError { column, part }
            }
            _ => {
                let func = Func::ALL
                    .into_iter()
                    .find(|f| f.name() == w)
                    .ok_or_else(|| (at, format!("'{w}' is not a function; builtins: {}", func_names())))?;
                let mut args = Vec::new();
                if !self.is_sym(")") {
                    args.push(self.level(1)?);
                    while self.is_sym(",") {
                        self.next += 1;
                        args.push(self.level(1)?);
                    }
                }
                Expr::Func { func, args }
            }
        };
        self.expect_sym(")")?;
        Ok(expr)
    }
}

fn func_names() -> String {
    Func::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

fn column_type(name: &str) -> Option<ColumnType> {
    use ColumnType as T;
    [T::Int, T::Float, T::Bool, T::String, T::Timestamp, T::Date, T::Json, T::Bytes]
        .into_iter()
        .find(|t| t.to_string() == name)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

impl Expr {
    /// Parses the text form of an expression, as [`Display`](std::fmt::Display) prints it:
    /// `words > 10 and not draft`. Fails with [`InvalidExpr`](crate::ErrorCode::InvalidExpr)
    /// naming the position and what was expected. UDF calls are not parsed.
    pub fn parse(text: &str) -> Result<Expr> {
        let fail = |(at, why): (usize, String)| {
            err!(
                InvalidExpr,
                "expression {text:?}: {why} (at character {})",
                text[..at.min(text.len())].chars().count() + 1
            )
        };
        let tokens = Lexer::tokens(text).map_err(fail)?;
        let mut p = Parser { text, tokens, next: 0 };
        let expr = p.top().map_err(fail)?;
        if p.peek().is_some() {
            return Err(fail((p.at(), format!("unexpected {} after a complete expression", p.found()))));
        }
        Ok(expr)
    }
}

impl std::str::FromStr for Expr {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> Result<Expr> {
        Expr::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{coalesce, col, if_, lit};

    fn parsed(text: &str) -> Expr {
        Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn error(text: &str) -> String {
        Expr::parse(text).expect_err(text).to_string()
    }

    #[test]
    fn precedence_and_associativity_follow_display() {
        assert_eq!(parsed("a + b * 2"), col("a") + col("b") * 2);
        assert_eq!(parsed("(a + 1) * b"), (col("a") + 1) * col("b"));
        assert_eq!(parsed("a - b - 1"), (col("a") - col("b")) - 1);
        assert_eq!(parsed("a - (b - 1)"), col("a") - (col("b") - 1));
        assert_eq!(parsed("a > 1 and b is null or not c"), col("a").gt(1).and(col("b").is_null()).or(!col("c")));
        assert_eq!(parsed("not a == 1"), !col("a").eq(1));
        assert_eq!(parsed("-a * 2"), -col("a") * 2);
        assert_eq!(parsed("a - -5"), col("a") - lit(-5));
        assert_eq!(parsed("-9223372036854775808"), lit(i64::MIN));
        assert_eq!(parsed("n + 1 as m"), (col("n") + 1).alias("m"));
    }

    #[test]
    fn every_kind_of_literal_and_call_reads_back() {
        assert_eq!(parsed(r#""tab\there \"q\" \u{1f600}""#), lit("tab\there \"q\" \u{1f600}"));
        assert_eq!(parsed("1.5e3"), lit(1500.0));
        assert_eq!(parsed("timestamp '2024-05-01T12:00:00Z'"), lit(Value::Timestamp(1_714_564_800_000_000)));
        assert_eq!(parsed("date '1970-01-02'"), lit(Value::Date(1)));
        assert_eq!(parsed("json '{\"it''s\": [1]}'"), lit(Value::Json(serde_json::json!({"it's": [1]}))));
        assert_eq!(parsed("x'00ff'"), lit(Value::Bytes(vec![0, 255])));
        assert_eq!(parsed("coalesce(a, null, true)"), coalesce([col("a"), lit(Value::Null), lit(true)]));
        assert_eq!(parsed("if(a > 1, \"big\", \"small\")"), if_(col("a").gt(1)).then("big").else_("small"));
        assert_eq!(parsed("cast(n as String)"), col("n").cast(ColumnType::String));
        assert_eq!(parsed("errormsg(s) is not null"), col("s").errormsg().is_not_null());
        // A column may be named like a function or a typed literal's prefix.
        assert_eq!(parsed("lower + date"), col("lower") + col("date"));
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let e = error("a >");
        assert!(e.contains("expected a value, found the end (at character 4)"), "{e}");
        assert!(error("a = 1").contains("compare with '=='"));
        assert!(error("a < b < c").contains("do not chain"));
        assert!(error("summarize@1(text)").contains("cannot call UDFs"));
        let e = error("shout(a)");
        assert!(e.contains("'shout' is not a function") && e.contains("lower"), "{e}");
        assert!(error("x'00...(40 bytes)'").contains("shortened"));
        assert!(error("date '2024-13-01'").contains("is not a date"));
        assert!(error("\"open").contains("not closed"));
        assert!(error("a b").contains("unexpected 'b' after a complete expression"));
        assert!(error("cast(a as Text)").contains("'Text' is not a type"));
        assert!(error("99999999999999999999").contains("too large"));
        assert!(error("and").contains("expected a value, found 'and'"));
        assert_eq!(Expr::parse("a >").unwrap_err().code(), crate::ErrorCode::InvalidExpr);
    }
}
