//! A kernel's Kconfig, read from its source: for every symbol its type,
//! what it depends on (its own `depends on` and that of the `if` blocks,
//! menus and choices around it), and what it selects and implies. Values
//! come from a configuration ([`crate::kernel::KernelConfig`]); defaults are
//! left to the kernel's own `olddefconfig`.

pub mod expr;

use std::collections::BTreeMap;

pub use expr::{Expr, Tristate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolType {
    Bool,
    Tristate,
    Int,
    Hex,
    String,
    /// Declared without a type in what was read.
    Unknown,
}

impl SymbolType {
    pub fn name(self) -> &'static str {
        match self {
            SymbolType::Bool => "bool",
            SymbolType::Tristate => "tristate",
            SymbolType::Int => "int",
            SymbolType::Hex => "hex",
            SymbolType::String => "string",
            SymbolType::Unknown => "untyped",
        }
    }
}

/// One Kconfig symbol, over all the places that define it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub kind: SymbolType,
    /// Whether any definition has a prompt (a user can set it), as opposed
    /// to a symbol only `select` or a default sets.
    pub prompt: bool,
    /// Its direct dependencies: the definitions' `depends on` and those of
    /// their surroundings, OR-ed over the definitions.
    pub depends: Expr,
    /// `select X [if …]`, with the condition (and the dependencies).
    pub selects: Vec<(String, Expr)>,
    pub implies: Vec<(String, Expr)>,
    /// Files that define it.
    pub files: Vec<String>,
}

/// Every symbol of a kernel's Kconfig.
#[derive(Debug, Clone, Default)]
pub struct Kconfig {
    pub symbols: BTreeMap<String, Symbol>,
    /// Lines that could not be read (file, line, text), for diagnostics.
    pub skipped: Vec<String>,
}

impl Kconfig {
    /// Reads the Kconfig tree from its root file (`Kconfig`), following
    /// `source` lines; `read` gives a file's text by path, `srcarch` is the
    /// value of `$(SRCARCH)` (`x86`, `arm64`).
    pub fn read(read: &dyn Fn(&str) -> Option<String>, srcarch: &str) -> Kconfig {
        let mut reader = Reader {
            read,
            srcarch,
            out: Kconfig::default(),
            scopes: Vec::new(),
            paths: Vec::new(),
        };
        reader.file("Kconfig");
        reader.out
    }

    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.symbols.get(name)
    }
}

/// What surrounds an entry: an `if`, a `menu`, a `choice`.
struct Scope {
    kind: ScopeKind,
    depends: Expr,
}

#[derive(PartialEq, Eq)]
enum ScopeKind {
    If,
    Menu,
    Choice,
}

/// The entry whose attributes are being read.
struct Entry {
    name: Option<String>,
    kind: SymbolType,
    prompt: bool,
    depends: Vec<Expr>,
    selects: Vec<(String, Option<Expr>)>,
    implies: Vec<(String, Option<Expr>)>,
    /// A menu or choice entry: its `depends on` belongs to its scope.
    opens_scope: bool,
}

struct Reader<'a> {
    read: &'a dyn Fn(&str) -> Option<String>,
    srcarch: &'a str,
    out: Kconfig,
    scopes: Vec<Scope>,
    /// The files being read, the innermost last.
    paths: Vec<String>,
}

impl Reader<'_> {
    fn file(&mut self, path: &str) {
        // Kconfig files source each other in a tree; a loop is a broken tree.
        if self.paths.len() > 64 {
            return;
        }
        let Some(text) = (self.read)(path) else {
            self.out.skipped.push(format!("{path}: not found"));
            return;
        };
        self.paths.push(path.to_string());
        let mut entry: Option<Entry> = None;
        let lines = logical_lines(&text);
        let mut i = 0;
        while i < lines.len() {
            let line = strip_comment(&lines[i].1);
            i += 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (word, rest) = line
                .split_once(char::is_whitespace)
                .map(|(w, r)| (w, r.trim()))
                .unwrap_or((line, ""));
            match word {
                "config" | "menuconfig" => {
                    self.finish(entry.take());
                    entry = Some(Entry::new(Some(rest.to_string()), false));
                }
                "choice" => {
                    self.finish(entry.take());
                    entry = Some(Entry::new(None, true));
                    self.scopes.push(Scope {
                        kind: ScopeKind::Choice,
                        depends: Expr::yes(),
                    });
                }
                "menu" => {
                    self.finish(entry.take());
                    entry = Some(Entry::new(None, true));
                    self.scopes.push(Scope {
                        kind: ScopeKind::Menu,
                        depends: Expr::yes(),
                    });
                }
                "endchoice" | "endmenu" | "endif" => {
                    self.finish(entry.take());
                    let kind = match word {
                        "endchoice" => ScopeKind::Choice,
                        "endmenu" => ScopeKind::Menu,
                        _ => ScopeKind::If,
                    };
                    if let Some(at) = self.scopes.iter().rposition(|s| s.kind == kind) {
                        self.scopes.truncate(at);
                    }
                }
                "if" => {
                    self.finish(entry.take());
                    let depends = self.expr(path, rest);
                    self.scopes.push(Scope {
                        kind: ScopeKind::If,
                        depends,
                    });
                }
                "source" | "rsource" | "osource" | "orsource" => {
                    self.finish(entry.take());
                    let target = rest.trim_matches('"').replace("$(SRCARCH)", self.srcarch);
                    let target = if word.starts_with('r') || word == "orsource" {
                        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                        format!("{dir}/{target}")
                    } else {
                        target
                    };
                    if !target.contains("$(") {
                        self.file(&target);
                    }
                }
                "comment" | "mainmenu" => {
                    self.finish(entry.take());
                }
                "help" | "---help---" => {
                    // The text runs until a line indented less than its first
                    // line (which may stand where `help` does); an
                    // unindented line ends it at once.
                    let mut text_indent = None;
                    while i < lines.len() {
                        let (next_indent, next) = (lines[i].0, &lines[i].1);
                        if !next.trim().is_empty() {
                            let first = *text_indent.get_or_insert(next_indent);
                            if next_indent < first || first == 0 {
                                break;
                            }
                        }
                        i += 1;
                    }
                }
                _ => {
                    if let Some(e) = entry.as_mut() {
                        self.attribute(e, path, word, rest);
                    }
                }
            }
        }
        self.finish(entry.take());
        self.paths.pop();
    }

    fn attribute(&mut self, e: &mut Entry, path: &str, word: &str, rest: &str) {
        let typed = |kind: SymbolType, e: &mut Entry, rest: &str| {
            e.kind = kind;
            if !rest.is_empty() {
                e.prompt = true;
            }
        };
        match word {
            "bool" | "boolean" => typed(SymbolType::Bool, e, rest),
            "tristate" => typed(SymbolType::Tristate, e, rest),
            "int" => typed(SymbolType::Int, e, rest),
            "hex" => typed(SymbolType::Hex, e, rest),
            "string" => typed(SymbolType::String, e, rest),
            "def_bool" => e.kind = SymbolType::Bool,
            "def_tristate" => e.kind = SymbolType::Tristate,
            "prompt" => e.prompt = true,
            "depends" => {
                let expr = self.expr(path, rest.strip_prefix("on").unwrap_or(rest));
                e.depends.push(expr);
            }
            "select" | "imply" => {
                let (target, cond) = match rest.split_once(" if ") {
                    Some((t, c)) => (t.trim(), Some(self.expr(path, c))),
                    None => (rest.trim(), None),
                };
                let list = if word == "select" {
                    &mut e.selects
                } else {
                    &mut e.implies
                };
                list.push((target.to_string(), cond));
            }
            _ => {}
        }
    }

    fn expr(&mut self, path: &str, text: &str) -> Expr {
        Expr::parse(text).unwrap_or_else(|| {
            self.out.skipped.push(format!("{path}: {text}"));
            Expr::yes()
        })
    }

    /// The dependencies of what stands inside the open scopes.
    fn scope_depends(&self) -> Expr {
        self.scopes
            .iter()
            .fold(Expr::yes(), |acc, s| Expr::and(acc, s.depends.clone()))
    }

    fn finish(&mut self, entry: Option<Entry>) {
        let Some(e) = entry else {
            return;
        };
        let own = e.depends.into_iter().fold(Expr::yes(), Expr::and);
        if e.opens_scope {
            // `depends on` of a menu or choice is its children's.
            if let Some(s) = self.scopes.last_mut() {
                s.depends = Expr::and(s.depends.clone(), own);
            }
            return;
        }
        let Some(name) = e.name else {
            return;
        };
        let depends = Expr::and(self.scope_depends(), own);
        let with = |list: Vec<(String, Option<Expr>)>| -> Vec<(String, Expr)> {
            list.into_iter()
                .map(|(t, c)| {
                    let cond = c.map_or(depends.clone(), |c| Expr::and(depends.clone(), c));
                    (t, cond)
                })
                .collect()
        };
        let selects = with(e.selects);
        let implies = with(e.implies);
        let path = self.paths.last().cloned().unwrap_or_default();
        match self.out.symbols.get_mut(&name) {
            Some(s) => {
                if s.kind == SymbolType::Unknown {
                    s.kind = e.kind;
                }
                s.prompt |= e.prompt;
                s.depends = Expr::or(s.depends.clone(), depends);
                s.selects.extend(selects);
                s.implies.extend(implies);
                if !s.files.contains(&path) {
                    s.files.push(path);
                }
            }
            None => {
                self.out.symbols.insert(
                    name.clone(),
                    Symbol {
                        name,
                        kind: e.kind,
                        prompt: e.prompt,
                        depends,
                        selects,
                        implies,
                        files: vec![path],
                    },
                );
            }
        }
    }
}

impl Entry {
    fn new(name: Option<String>, opens_scope: bool) -> Self {
        Entry {
            name,
            kind: SymbolType::Unknown,
            prompt: false,
            depends: Vec::new(),
            selects: Vec::new(),
            implies: Vec::new(),
            opens_scope,
        }
    }
}

/// Lines joined where they end in `\`, each with its indentation (tabs to
/// the next multiple of 8, as Kconfig counts them).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for raw in text.lines() {
        let (indent, body) = match pending.take() {
            Some((indent, mut acc)) => {
                acc.push(' ');
                acc.push_str(raw.trim());
                (indent, acc)
            }
            None => (indentation(raw), raw.to_string()),
        };
        if let Some(stripped) = body.strip_suffix('\\') {
            pending = Some((indent, stripped.to_string()));
        } else {
            out.push((indent, body));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

fn indentation(line: &str) -> usize {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width = (width / 8 + 1) * 8,
            _ => break,
        }
    }
    width
}

/// A line without its `#` comment (a `#` inside quotes is text).
fn strip_comment(line: &str) -> String {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return line[..i].to_string(),
            _ => {}
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelConfig;

    const ROOT: &str =
        "mainmenu \"Linux\"\nsource \"net/Kconfig\"\nsource \"arch/$(SRCARCH)/Kconfig\"\n";
    const NET: &str = r#"
menuconfig NET
	bool "Networking support"

if NET

config INET
	bool "TCP/IP networking"
	help
	  Say Y.

	  config NOT_A_SYMBOL is help text

menuconfig NET_DSA
	tristate "Distributed Switch Architecture"
	depends on BRIDGE || BRIDGE=n # a comment
	depends on INET && \
		NETDEVICES
	select GRO_CELLS
	select PHYLINK if INET
	imply NET_SELFTESTS

if NET_DSA

config NET_DSA_TAG_AR9331
	tristate "Tag driver"

endif

menu "Core"
	depends on INET

config MCTP
	bool "MCTP core protocol support"

endmenu

choice
	prompt "Default"
	depends on INET

config DEFAULT_A
	bool "A"

endchoice

config BRIDGE
	tristate "Bridge"

endif # NET
"#;

    fn read(path: &str) -> Option<String> {
        match path {
            "Kconfig" => Some(ROOT.to_string()),
            "net/Kconfig" => Some(NET.to_string()),
            "arch/x86/Kconfig" => Some("config X86\n\tdef_bool y\nconfig NETDEVICES\n\tbool \"Net devices\"\nconfig INET\n\tbool\n\tdepends on X86\n".into()),
            _ => None,
        }
    }

    #[test]
    fn symbols_types_and_inherited_dependencies() {
        let k = Kconfig::read(&read, "x86");
        assert!(k.skipped.is_empty(), "{:?}", k.skipped);
        let dsa = k.get("NET_DSA").unwrap();
        assert_eq!(dsa.kind, SymbolType::Tristate);
        assert!(dsa.prompt);
        assert_eq!(
            dsa.depends.to_string(),
            "(NET && ((BRIDGE || BRIDGE=n) && (INET && NETDEVICES)))"
        );
        assert_eq!(dsa.selects[0].0, "GRO_CELLS");
        assert_eq!(dsa.selects[1].1.symbols().last(), Some(&"INET"));
        assert_eq!(dsa.implies[0].0, "NET_SELFTESTS");
        let tag = k.get("NET_DSA_TAG_AR9331").unwrap();
        assert_eq!(tag.depends.to_string(), "(NET && NET_DSA)");
        assert_eq!(k.get("MCTP").unwrap().kind, SymbolType::Bool);
        assert_eq!(k.get("MCTP").unwrap().depends.to_string(), "(NET && INET)");
        assert_eq!(
            k.get("DEFAULT_A").unwrap().depends.to_string(),
            "(NET && INET)"
        );
        assert!(k.get("NOT_A_SYMBOL").is_none());
        assert_eq!(k.get("BRIDGE").unwrap().depends.to_string(), "NET");
        // Two definitions: either one's dependencies will do.
        assert_eq!(k.get("INET").unwrap().depends.to_string(), "(NET || X86)");
        let c = KernelConfig::parse(
            "CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_NETDEVICES=y\nCONFIG_BRIDGE=m\n",
        );
        assert_eq!(dsa.depends.eval(&c), Tristate::M);
    }
}
