//! Kconfig expressions (`depends on`, `select … if`, `if` blocks): parsed
//! once, evaluated in Kconfig's tristate logic against a configuration.

use std::fmt;

use crate::kernel::KernelConfig;

/// A tristate value: `n` < `m` < `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tristate {
    N,
    M,
    Y,
}

impl Tristate {
    pub fn of(value: &str) -> Tristate {
        match value {
            "y" => Tristate::Y,
            "m" => Tristate::M,
            _ => Tristate::N,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tristate::N => "n",
            Tristate::M => "m",
            Tristate::Y => "y",
        }
    }

    fn not(self) -> Tristate {
        match self {
            Tristate::N => Tristate::Y,
            Tristate::M => Tristate::M,
            Tristate::Y => Tristate::N,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A symbol, or a constant word (`y`, `m`, `n`, a number).
    Sym(String),
    /// A quoted string.
    Str(String),
    /// `$(…)`: decided by Kconfig from the toolchain; the configuration
    /// already holds what it decided.
    Macro(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn and(a: Expr, b: Expr) -> Expr {
        match (&a, &b) {
            (Expr::Sym(y), _) if y == "y" => b,
            (_, Expr::Sym(y)) if y == "y" => a,
            _ => Expr::And(Box::new(a), Box::new(b)),
        }
    }

    pub fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }

    pub fn yes() -> Expr {
        Expr::Sym("y".into())
    }

    /// The expression's value under `config`.
    pub fn eval(&self, config: &KernelConfig) -> Tristate {
        match self {
            Expr::Sym(s) => symbol_value(s, config),
            Expr::Str(_) => Tristate::N,
            Expr::Macro(_) => Tristate::Y,
            Expr::Not(e) => e.eval(config).not(),
            Expr::And(a, b) => a.eval(config).min(b.eval(config)),
            Expr::Or(a, b) => a.eval(config).max(b.eval(config)),
            Expr::Compare(op, a, b) => {
                let (x, y) = (a.text(config), b.text(config));
                let ordering = match (parse_number(&x), parse_number(&y)) {
                    (Some(i), Some(j)) => i.cmp(&j),
                    _ => x.cmp(&y),
                };
                let holds = match op {
                    Cmp::Eq => ordering.is_eq(),
                    Cmp::Ne => ordering.is_ne(),
                    Cmp::Lt => ordering.is_lt(),
                    Cmp::Le => ordering.is_le(),
                    Cmp::Gt => ordering.is_gt(),
                    Cmp::Ge => ordering.is_ge(),
                };
                if holds {
                    Tristate::Y
                } else {
                    Tristate::N
                }
            }
        }
    }

    /// The string a side of a comparison stands for.
    fn text(&self, config: &KernelConfig) -> String {
        match self {
            Expr::Sym(s) if is_constant(s) => s.clone(),
            Expr::Sym(s) => config.get(s).unwrap_or("n").to_string(),
            Expr::Str(s) => s.clone(),
            other => other.eval(config).as_str().to_string(),
        }
    }

    /// Every symbol the expression names.
    pub fn symbols(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Sym(s) = e {
                if !is_constant(s) {
                    out.push(s.as_str());
                }
            }
        });
        out
    }

    /// The symbols the expression asks to be on: named outside any `!`
    /// and any comparison (`IPV6 || IPV6=n` names IPV6 once, positively).
    pub fn positive_symbols(&self) -> Vec<&str> {
        match self {
            Expr::Sym(s) if !is_constant(s) => vec![s.as_str()],
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut out = a.positive_symbols();
                out.extend(b.positive_symbols());
                out
            }
            _ => Vec::new(),
        }
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Not(e) => e.walk(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            _ => {}
        }
    }

    /// Parses an expression; `None` for text that is none.
    pub fn parse(text: &str) -> Option<Expr> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, at: 0 };
        let e = p.or()?;
        (p.at == p.tokens.len()).then_some(e)
    }
}

fn is_constant(s: &str) -> bool {
    matches!(s, "y" | "m" | "n") || parse_number(s).is_some()
}

fn parse_number(s: &str) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    s.parse().ok()
}

fn symbol_value(s: &str, config: &KernelConfig) -> Tristate {
    match s {
        "y" => Tristate::Y,
        "m" => Tristate::M,
        "n" => Tristate::N,
        _ => config.get(s).map_or(Tristate::N, Tristate::of),
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Sym(s) => f.write_str(s),
            Expr::Str(s) => write!(f, "\"{s}\""),
            Expr::Macro(m) => write!(f, "$({m})"),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
            Expr::Compare(op, a, b) => {
                let op = match op {
                    Cmp::Eq => "=",
                    Cmp::Ne => "!=",
                    Cmp::Lt => "<",
                    Cmp::Le => "<=",
                    Cmp::Gt => ">",
                    Cmp::Ge => ">=",
                };
                write!(f, "{a}{op}{b}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Macro(String),
    Op(&'static str),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '$' && chars.get(i + 1) == Some(&'(') {
            // A macro: up to the matching parenthesis.
            let mut depth = 0;
            let start = i + 2;
            let mut j = i + 1;
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            out.push(Token::Macro(
                chars[start..j.min(chars.len())].iter().collect(),
            ));
            i = j + 1;
        } else if c == '"' || c == '\'' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && j + 1 < chars.len() {
                    j += 1;
                }
                s.push(chars[j]);
                j += 1;
            }
            out.push(Token::Str(s));
            i = j + 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Token::Word(chars[i..j].iter().collect()));
            i = j;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "&&" => Some("&&"),
                "||" => Some("||"),
                "!=" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Token::Op(op));
                i += 2;
                continue;
            }
            let op = match c {
                '!' => "!",
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                _ => return None,
            };
            out.push(Token::Op(op));
            i += 1;
        }
    }
    Some(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op)
    }

    fn or(&mut self) -> Option<Expr> {
        let mut e = self.and()?;
        while self.peek_op("||") {
            self.at += 1;
            e = Expr::or(e, self.and()?);
        }
        Some(e)
    }

    fn and(&mut self) -> Option<Expr> {
        let mut e = self.unary()?;
        while self.peek_op("&&") {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Some(e)
    }

    fn unary(&mut self) -> Option<Expr> {
        if self.peek_op("!") {
            self.at += 1;
            return Some(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek_op("(") {
            self.at += 1;
            let e = self.or()?;
            if !self.peek_op(")") {
                return None;
            }
            self.at += 1;
            return Some(e);
        }
        let left = self.atom()?;
        let op = match self.tokens.get(self.at) {
            Some(Token::Op("=")) => Cmp::Eq,
            Some(Token::Op("!=")) => Cmp::Ne,
            Some(Token::Op("<")) => Cmp::Lt,
            Some(Token::Op("<=")) => Cmp::Le,
            Some(Token::Op(">")) => Cmp::Gt,
            Some(Token::Op(">=")) => Cmp::Ge,
            _ => return Some(left),
        };
        self.at += 1;
        let right = self.atom()?;
        Some(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn atom(&mut self) -> Option<Expr> {
        let t = self.tokens.get(self.at)?.clone();
        self.at += 1;
        match t {
            Token::Word(w) => Some(Expr::Sym(w)),
            Token::Str(s) => Some(Expr::Str(s)),
            Token::Macro(m) => Some(Expr::Macro(m)),
            Token::Op(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> KernelConfig {
        KernelConfig::parse(text)
    }

    #[test]
    fn tristate_logic() {
        let c = config("CONFIG_BRIDGE=m\nCONFIG_INET=y\nCONFIG_NETDEVICES=y\nCONFIG_NR=64\n");
        let e = |s: &str| Expr::parse(s).unwrap().eval(&c);
        assert_eq!(e("BRIDGE || BRIDGE=n"), Tristate::M);
        assert_eq!(e("HSR || HSR=n"), Tristate::Y);
        assert_eq!(e("INET && NETDEVICES"), Tristate::Y);
        assert_eq!(e("INET && BRIDGE"), Tristate::M);
        assert_eq!(e("!BRIDGE"), Tristate::M);
        assert_eq!(e("!(INET || HSR)"), Tristate::N);
        assert_eq!(e("NR >= 32"), Tristate::Y);
        assert_eq!(e("NR < 0x10"), Tristate::N);
        assert_eq!(e("BRIDGE != y"), Tristate::Y);
        assert_eq!(e("$(cc-option,-mfoo)"), Tristate::Y);
        assert_eq!(e("m"), Tristate::M);
    }

    #[test]
    fn parsing() {
        let e = Expr::parse("!DEBUG_INFO_DWARF5 || PAHOLE_VERSION >= 121").unwrap();
        assert_eq!(e.symbols(), ["DEBUG_INFO_DWARF5", "PAHOLE_VERSION"]);
        assert_eq!(e.to_string(), "(!DEBUG_INFO_DWARF5 || PAHOLE_VERSION>=121)");
        assert!(Expr::parse("A &&").is_none());
        assert!(Expr::parse("(A").is_none());
        assert!(Expr::parse("A # comment").is_none());
        assert_eq!(
            Expr::parse("X86 && \"$(ARCH)\" = \"x86\"")
                .unwrap()
                .symbols(),
            ["X86"]
        );
    }

    #[test]
    fn positive_symbols_leave_out_negations_and_comparisons() {
        let e = Expr::parse("BLK_DEV_DM && (ENCRYPTED_KEYS || ENCRYPTED_KEYS=n) && !HSR").unwrap();
        assert_eq!(e.positive_symbols(), ["BLK_DEV_DM", "ENCRYPTED_KEYS"]);
        assert!(Expr::parse("!NF_CONNTRACK")
            .unwrap()
            .positive_symbols()
            .is_empty());
    }
}
