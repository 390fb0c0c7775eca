//! SQL text into [`Statement`]s: `sqlparser`'s PostgreSQL dialect reads the statements, after
//! Greenplum's `DISTRIBUTED BY (col) | RANDOMLY | REPLICATED` tail is taken out of the token
//! stream (sqlparser knows no such clause). Whatever lies outside the subset is refused here,
//! with `0A000` and the construct's name, before anything runs.

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::{ColumnDef, Distribution, SqlError, TableSchema};
use super::{Datum, SqlType};
use crate::model::data::TableKind;

/// The longest statement text accepted, in bytes.
pub const MAX_TEXT: usize = 1 << 20;

/// A parsed statement of the subset.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    CreateTable {
        name: String,
        schema: TableSchema,
        if_not_exists: bool,
    },
    DropTable {
        names: Vec<String>,
        if_exists: bool,
    },
    Insert {
        table: String,
        /// The columns named, in the order of each row's values; `None`: every column.
        columns: Option<Vec<String>>,
        rows: Vec<Vec<Expr>>,
        returning: Option<Vec<SelectItem>>,
    },
    Update {
        table: String,
        sets: Vec<(String, Expr)>,
        filter: Option<Expr>,
    },
    Delete {
        table: String,
        filter: Option<Expr>,
    },
    Select(Select),
    Begin,
    Commit,
    Rollback,
    Set {
        name: String,
        value: String,
    },
    Show {
        name: String,
    },
    /// A statement drivers send that has nothing to do here (`DISCARD ALL`, `DEALLOCATE`):
    /// answered with its tag.
    Ignored {
        tag: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    /// The table read, if any (`SELECT version()` reads none).
    pub from: Option<String>,
    pub items: Vec<SelectItem>,
    pub filter: Option<Expr>,
    /// Sort keys, each with whether it is descending.
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SelectItem {
    Wildcard,
    Expr { expr: Expr, name: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Column(String),
    /// A constant; a quoted string is `Text` until it meets a typed value.
    Literal(Datum),
    /// `$n`, numbered from 1.
    Param(usize),
    Binary(Box<Expr>, BinOp, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    /// `IS NULL`, or with `true` `IS NOT NULL`.
    IsNull(Box<Expr>, bool),
    Cast(Box<Expr>, SqlType),
    /// A function call; `star` for `count(*)`.
    Call {
        name: String,
        args: Vec<Expr>,
        star: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Concat,
}

fn syntax(e: impl std::fmt::Display) -> SqlError {
    SqlError::new("42601", e.to_string())
}

/// Parses `text` into its statements (none for an empty text).
pub fn parse(text: &str) -> Result<Vec<Statement>, SqlError> {
    if text.len() > MAX_TEXT {
        return Err(SqlError::new(
            "54000",
            format!(
                "statement text of {} bytes is longer than the limit of {MAX_TEXT}",
                text.len()
            ),
        ));
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text).tokenize().map_err(syntax)?;
    let (tokens, tails) = split_distributed(tokens)?;
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(64)
        .with_tokens(tokens)
        .parse_statements()
        .map_err(syntax)?;
    let mut out = Vec::with_capacity(parsed.len());
    for (i, stmt) in parsed.into_iter().enumerate() {
        let tail = tails.iter().find(|t| t.statement == i);
        out.push(statement(stmt, tail)?);
    }
    if let Some(t) = tails.iter().find(|t| t.statement >= out.len()) {
        return Err(syntax(format!(
            "DISTRIBUTED {} follows no statement",
            t.describe()
        )));
    }
    Ok(out)
}

/// A `DISTRIBUTED` clause taken out of the text, and the statement it ended.
struct Tail {
    statement: usize,
    by: Option<Vec<String>>,
    randomly: bool,
}

impl Tail {
    fn describe(&self) -> String {
        match (&self.by, self.randomly) {
            (Some(cols), _) => format!("BY ({})", cols.join(", ")),
            (None, true) => "RANDOMLY".into(),
            (None, false) => "REPLICATED".into(),
        }
    }
}

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

fn split_distributed(tokens: Vec<Token>) -> Result<(Vec<Token>, Vec<Tail>), SqlError> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut tails = Vec::new();
    let mut statement = 0usize;
    let mut depth = 0i32;
    let mut meaningful = false;
    let mut i = 0;
    let significant = |t: &Token| !matches!(t, Token::Whitespace(_));
    while i < tokens.len() {
        let t = &tokens[i];
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth == 0 => {
                if meaningful {
                    statement += 1;
                }
                meaningful = false;
            }
            _ => {}
        }
        if depth == 0 && is_word(t, "distributed") {
            let rest: Vec<(usize, &Token)> = tokens
                .iter()
                .enumerate()
                .skip(i + 1)
                .filter(|(_, t)| significant(t))
                .collect();
            let mut j;
            let next = |j: usize| rest.get(j).map(|(_, t)| *t);
            let tail = if next(0).is_some_and(|t| is_word(t, "randomly")) {
                j = 1;
                Tail {
                    statement,
                    by: None,
                    randomly: true,
                }
            } else if next(0).is_some_and(|t| is_word(t, "replicated")) {
                j = 1;
                Tail {
                    statement,
                    by: None,
                    randomly: false,
                }
            } else if next(0).is_some_and(|t| is_word(t, "by")) && next(1) == Some(&Token::LParen) {
                j = 2;
                let mut cols = Vec::new();
                loop {
                    match next(j) {
                        Some(Token::Word(w)) => cols.push(ident_text(&w.value, w.quote_style)),
                        _ => {
                            return Err(syntax(
                                "DISTRIBUTED BY needs a column list: DISTRIBUTED BY (column)",
                            ))
                        }
                    }
                    j += 1;
                    match next(j) {
                        Some(Token::Comma) => j += 1,
                        Some(Token::RParen) => {
                            j += 1;
                            break;
                        }
                        _ => {
                            return Err(syntax(
                                "DISTRIBUTED BY needs a column list: DISTRIBUTED BY (column)",
                            ))
                        }
                    }
                }
                Tail {
                    statement,
                    by: Some(cols),
                    randomly: false,
                }
            } else {
                return Err(syntax(
                    "DISTRIBUTED must be followed by BY (column), RANDOMLY or REPLICATED",
                ));
            };
            tails.push(tail);
            i = match rest.get(j) {
                Some((k, _)) => *k,
                None => tokens.len(),
            };
            continue;
        }
        if significant(t) && !matches!(t, Token::SemiColon) {
            meaningful = true;
        }
        out.push(t.clone());
        i += 1;
    }
    Ok((out, tails))
}

fn ident_text(value: &str, quote: Option<char>) -> String {
    if quote.is_some() {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

fn ident(i: &ast::Ident) -> String {
    ident_text(&i.value, i.quote_style)
}

/// A table's name: one identifier, or `public.name` / `pg_catalog.name`.
fn object_name(n: &ast::ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p.as_ident() {
                Some(i) => Ok(ident(i)),
                None => Err(SqlError::unsupported(format!("the name {n}"))),
            })
            .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [one] => Ok(one.clone()),
        [schema, one] if schema == "public" || schema == "pg_catalog" => Ok(one.clone()),
        _ => Err(SqlError::new(
            "3F000",
            format!("schema of \"{n}\" does not exist: tables live in schema public"),
        )),
    }
}

fn statement(stmt: ast::Statement, tail: Option<&Tail>) -> Result<Statement, SqlError> {
    if tail.is_some() && !matches!(stmt, ast::Statement::CreateTable(_)) {
        return Err(syntax("DISTRIBUTED ends only a CREATE TABLE statement"));
    }
    match stmt {
        ast::Statement::CreateTable(ct) => create_table(ct, tail),
        ast::Statement::Drop {
            object_type: ast::ObjectType::Table,
            if_exists,
            names,
            ..
        } => Ok(Statement::DropTable {
            names: names.iter().map(object_name).collect::<Result<_, _>>()?,
            if_exists,
        }),
        ast::Statement::Insert(ins) => insert(ins),
        ast::Statement::Update(up) => update(up),
        ast::Statement::Delete(del) => delete(del),
        ast::Statement::Query(q) => Ok(Statement::Select(query(*q)?)),
        ast::Statement::StartTransaction { .. } => Ok(Statement::Begin),
        ast::Statement::Commit { chain: false, .. } => Ok(Statement::Commit),
        ast::Statement::Rollback {
            chain: false,
            savepoint: None,
        } => Ok(Statement::Rollback),
        ast::Statement::Set(set) => set_statement(set),
        ast::Statement::ShowVariable { variable } => Ok(Statement::Show {
            name: variable.iter().map(ident).collect::<Vec<_>>().join(" "),
        }),
        ast::Statement::Discard { .. } => Ok(Statement::Ignored {
            tag: "DISCARD ALL".into(),
        }),
        ast::Statement::Deallocate { .. } => Ok(Statement::Ignored {
            tag: "DEALLOCATE".into(),
        }),
        other => Err(SqlError::unsupported(format!(
            "the statement \"{}\"",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn set_statement(set: ast::Set) -> Result<Statement, SqlError> {
    match set {
        ast::Set::SingleAssignment {
            variable, values, ..
        } => Ok(Statement::Set {
            name: variable.to_string().to_ascii_lowercase(),
            value: values
                .iter()
                .map(|v| match v {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
        ast::Set::SetTimeZone { value, .. } => Ok(Statement::Set {
            name: "timezone".into(),
            value: value.to_string().trim_matches('\'').to_string(),
        }),
        ast::Set::SetNames { charset_name, .. } => Ok(Statement::Set {
            name: "client_encoding".into(),
            value: charset_name.to_string(),
        }),
        other => Ok(Statement::Set {
            name: first_words(&other.to_string()).to_ascii_lowercase(),
            value: String::new(),
        }),
    }
}

fn sql_type(dt: &ast::DataType) -> Result<SqlType, SqlError> {
    use ast::DataType as D;
    Ok(match dt {
        D::Int(_) | D::Integer(_) | D::Int4(_) | D::SmallInt(_) | D::Int2(_) => SqlType::Int4,
        D::BigInt(_) | D::Int8(_) => SqlType::Int8,
        D::Text | D::Varchar(_) | D::CharacterVarying(_) | D::String(_) => SqlType::Text,
        D::Boolean | D::Bool => SqlType::Bool,
        D::Timestamp(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => {
            SqlType::Timestamp
        }
        other => {
            return Err(SqlError::new(
                "0A000",
                format!(
                "type {other} is not supported: use bigint, integer, text, boolean or timestamp"
            ),
            ))
        }
    })
}

fn key_columns(cols: &[ast::IndexColumn]) -> Result<Vec<String>, SqlError> {
    cols.iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(i) => Ok(ident(i)),
            other => Err(SqlError::unsupported(format!(
                "a key on the expression {other}"
            ))),
        })
        .collect()
}

fn create_table(ct: ast::CreateTable, tail: Option<&Tail>) -> Result<Statement, SqlError> {
    let name = object_name(&ct.name)?;
    if ct.query.is_some() || ct.like.is_some() || ct.temporary || ct.or_replace {
        return Err(SqlError::unsupported(
            "CREATE TABLE with AS, LIKE, TEMPORARY or OR REPLACE",
        ));
    }
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut pk: Vec<String> = Vec::new();
    for c in &ct.columns {
        let cname = ident(&c.name);
        if columns.iter().any(|x| x.name == cname) {
            return Err(SqlError::new(
                "42701",
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        let mut def = ColumnDef {
            name: cname.clone(),
            ty: sql_type(&c.data_type)?,
            not_null: false,
        };
        for opt in &c.options {
            match &opt.option {
                ast::ColumnOption::NotNull => def.not_null = true,
                ast::ColumnOption::Null => def.not_null = false,
                ast::ColumnOption::PrimaryKey(_) => {
                    pk.push(cname.clone());
                }
                other => {
                    return Err(SqlError::unsupported(format!(
                        "the column option \"{other}\""
                    )))
                }
            }
        }
        columns.push(def);
    }
    if columns.is_empty() {
        return Err(SqlError::unsupported("a table without columns"));
    }
    for con in &ct.constraints {
        match con {
            ast::TableConstraint::PrimaryKey(p) => pk.extend(key_columns(&p.columns)?),
            other => {
                return Err(SqlError::unsupported(format!(
                    "the table constraint \"{other}\""
                )))
            }
        }
    }
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let find = |n: &str| {
        names.iter().position(|c| c == n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" named in a key does not exist"),
            )
        })
    };
    let primary_key =
        match pk.as_slice() {
            [] => None,
            [one] => {
                let i = find(one)?;
                if !matches!(columns[i].ty, SqlType::Int4 | SqlType::Int8) {
                    return Err(SqlError::unsupported(format!(
                        "a primary key of type {} (the key must be an integer column)",
                        columns[i].ty.name()
                    )));
                }
                columns[i].not_null = true;
                Some(i)
            }
            _ => return Err(SqlError::new(
                if pk.iter().collect::<std::collections::BTreeSet<_>>().len() < pk.len() {
                    "42P16"
                } else {
                    "0A000"
                },
                "a primary key of several columns is not supported (nor more than one primary key)",
            )),
        };
    let distribution = match tail {
        None => match primary_key {
            Some(k) => Distribution::By(k),
            None => Distribution::By(0),
        },
        Some(Tail { by: Some(cols), .. }) => match cols.as_slice() {
            [one] => Distribution::By(find(one).map_err(|_| {
                SqlError::new(
                    "42703",
                    format!("column \"{one}\" named in DISTRIBUTED BY clause does not exist"),
                )
            })?),
            _ => return Err(SqlError::unsupported("DISTRIBUTED BY several columns")),
        },
        Some(Tail { randomly: true, .. }) => Distribution::Randomly,
        Some(_) => Distribution::Replicated,
    };
    if let (Some(k), Distribution::By(d)) = (primary_key, distribution) {
        if k != d {
            return Err(SqlError::new(
                "42P16",
                "PRIMARY KEY definition must contain all columns in the table's distribution key",
            ));
        }
    }
    if primary_key.is_some() && distribution == Distribution::Randomly {
        return Err(SqlError::new(
            "42P16",
            "PRIMARY KEY and DISTRIBUTED RANDOMLY are incompatible",
        ));
    }
    let mut kind = TableKind::Heap;
    let options = match &ct.table_options {
        ast::CreateTableOptions::None => Vec::new(),
        ast::CreateTableOptions::With(opts) => opts.clone(),
        other => return Err(SqlError::unsupported(format!("table options {other}"))),
    };
    for o in options {
        let ast::SqlOption::KeyValue { key, value } = &o else {
            return Err(SqlError::unsupported(format!("the storage option {o}")));
        };
        let k = key.to_string().to_ascii_lowercase();
        let v = value.to_string().trim_matches('\'').to_ascii_lowercase();
        match (k.as_str(), v.as_str()) {
            ("appendoptimized" | "appendonly", "true") => kind = TableKind::AppendOptimized,
            ("appendoptimized" | "appendonly", "false") => kind = TableKind::Heap,
            ("orientation", "row") => {}
            _ => {
                return Err(SqlError::new(
                    "22023",
                    format!(
                    "storage option \"{k}={v}\" is not recognized: appendoptimized=true|false is"
                ),
                ))
            }
        }
    }
    Ok(Statement::CreateTable {
        name,
        schema: TableSchema {
            columns,
            primary_key,
            distribution,
            kind,
        },
        if_not_exists: ct.if_not_exists,
    })
}

fn table_of(t: &ast::TableWithJoins) -> Result<String, SqlError> {
    if !t.joins.is_empty() {
        return Err(SqlError::unsupported("a join"));
    }
    match &t.relation {
        ast::TableFactor::Table {
            name, args: None, ..
        } => object_name(name),
        other => Err(SqlError::unsupported(format!("reading from {other}"))),
    }
}

fn insert(ins: ast::Insert) -> Result<Statement, SqlError> {
    let table = match &ins.table {
        ast::TableObject::TableName(n) => object_name(n)?,
        other => return Err(SqlError::unsupported(format!("inserting into {other}"))),
    };
    if ins.on.is_some() {
        return Err(SqlError::unsupported("ON CONFLICT"));
    }
    let columns = if ins.columns.is_empty() {
        None
    } else {
        Some(
            ins.columns
                .iter()
                .map(|c| match c.0.last().and_then(|p| p.as_ident()) {
                    Some(i) => Ok(ident(i)),
                    None => Err(SqlError::unsupported(format!("the column {c}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let Some(source) = ins.source else {
        return Err(SqlError::unsupported("INSERT without VALUES"));
    };
    let ast::SetExpr::Values(values) = *source.body else {
        return Err(SqlError::unsupported("INSERT ... SELECT"));
    };
    let rows = values
        .rows
        .into_iter()
        .map(|r| {
            r.content
                .into_iter()
                .map(expr)
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let returning = match ins.returning {
        None => None,
        Some(items) => Some(select_items(items)?),
    };
    Ok(Statement::Insert {
        table,
        columns,
        rows,
        returning,
    })
}

fn update(up: ast::Update) -> Result<Statement, SqlError> {
    let table = table_of(&up.table)?;
    if up.from.is_some() || up.returning.is_some() || up.limit.is_some() {
        return Err(SqlError::unsupported(
            "UPDATE with FROM, RETURNING or LIMIT",
        ));
    }
    let sets = up
        .assignments
        .into_iter()
        .map(|a| match &a.target {
            ast::AssignmentTarget::ColumnName(n) => match n.0.last().and_then(|p| p.as_ident()) {
                Some(i) => Ok((ident(i), expr(a.value)?)),
                None => Err(SqlError::unsupported(format!("assigning to {n}"))),
            },
            other => Err(SqlError::unsupported(format!("assigning to {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Statement::Update {
        table,
        sets,
        filter: up.selection.map(expr).transpose()?,
    })
}

fn delete(del: ast::Delete) -> Result<Statement, SqlError> {
    let tables = match &del.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if del.using.is_some() || del.returning.is_some() || del.limit.is_some() {
        return Err(SqlError::unsupported(
            "DELETE with USING, RETURNING or LIMIT",
        ));
    }
    let [t] = tables.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    Ok(Statement::Delete {
        table: table_of(t)?,
        filter: del.selection.map(expr).transpose()?,
    })
}

fn select_items(items: Vec<ast::SelectItem>) -> Result<Vec<SelectItem>, SqlError> {
    items
        .into_iter()
        .map(|item| match item {
            ast::SelectItem::Wildcard(_) => Ok(SelectItem::Wildcard),
            ast::SelectItem::UnnamedExpr(e) => {
                let e = expr(e)?;
                let name = default_name(&e);
                Ok(SelectItem::Expr { expr: e, name })
            }
            ast::SelectItem::ExprWithAlias { expr: e, alias } => Ok(SelectItem::Expr {
                expr: expr(e)?,
                name: ident(&alias),
            }),
            other => Err(SqlError::unsupported(format!("the select item {other}"))),
        })
        .collect()
}

/// The column name PostgreSQL gives an unnamed result column.
fn default_name(e: &Expr) -> String {
    match e {
        Expr::Column(c) => c.clone(),
        Expr::Call { name, .. } => name.clone(),
        Expr::Cast(inner, _) => default_name(inner),
        _ => "?column?".into(),
    }
}

fn query(q: ast::Query) -> Result<Select, SqlError> {
    if q.with.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return Err(SqlError::unsupported("WITH, FETCH or FOR UPDATE"));
    }
    let ast::SetExpr::Select(sel) = *q.body else {
        return Err(SqlError::unsupported(
            "a query other than one SELECT (UNION, VALUES, a subquery)",
        ));
    };
    let sel = *sel;
    if sel.distinct.is_some() || sel.having.is_some() || sel.into.is_some() {
        return Err(SqlError::unsupported("DISTINCT, HAVING or SELECT INTO"));
    }
    match &sel.group_by {
        ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty() => {}
        _ => return Err(SqlError::unsupported("GROUP BY")),
    }
    let from = match sel.from.as_slice() {
        [] => None,
        [t] => Some(table_of(t)?),
        _ => return Err(SqlError::unsupported("reading several tables")),
    };
    let mut order_by = Vec::new();
    if let Some(ob) = q.order_by {
        let ast::OrderByKind::Expressions(exprs) = ob.kind else {
            return Err(SqlError::unsupported("ORDER BY ALL"));
        };
        for o in exprs {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            order_by.push((expr(o.expr)?, desc));
        }
    }
    let (limit, offset) = match q.limit_clause {
        None => (None, None),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => (
            limit.map(expr).transpose()?,
            offset.map(|o| expr(o.value)).transpose()?,
        ),
        Some(other) => return Err(SqlError::unsupported(format!("{other}"))),
    };
    Ok(Select {
        from,
        items: select_items(sel.projection)?,
        filter: sel.selection.map(expr).transpose()?,
        order_by,
        limit,
        offset,
    })
}

fn number(s: &str) -> Result<Datum, SqlError> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(match i32::try_from(v) {
            Ok(v) => Datum::Int4(v),
            Err(_) => Datum::Int8(v),
        });
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SqlError::new(
            "22003",
            format!("value \"{s}\" is out of range for type bigint"),
        ));
    }
    Err(SqlError::unsupported(format!(
        "the numeric value {s} (integers only)"
    )))
}

fn expr(e: ast::Expr) -> Result<Expr, SqlError> {
    use ast::Expr as E;
    Ok(match e {
        E::Identifier(i) => Expr::Column(ident(&i)),
        E::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => Expr::Column(ident(i)),
            None => return Err(syntax("an empty name")),
        },
        E::Value(v) => match v.value {
            ast::Value::Number(s, _) => Expr::Literal(number(&s)?),
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::DoubleQuotedString(s) => Expr::Literal(Datum::Text(s)),
            ast::Value::Boolean(b) => Expr::Literal(Datum::Bool(b)),
            ast::Value::Null => Expr::Literal(Datum::Null),
            ast::Value::Placeholder(p) => {
                let n = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=65_535).contains(n))
                    .ok_or_else(|| syntax(format!("parameter {p} is not $1 to $65535")))?;
                Expr::Param(n)
            }
            other => return Err(SqlError::unsupported(format!("the value {other}"))),
        },
        E::Nested(inner) => expr(*inner)?,
        E::UnaryOp { op, expr: inner } => match op {
            ast::UnaryOperator::Not => Expr::Not(Box::new(expr(*inner)?)),
            ast::UnaryOperator::Minus => match expr(*inner)? {
                Expr::Literal(Datum::Int4(v)) => Expr::Literal(Datum::Int4(-v)),
                Expr::Literal(Datum::Int8(v)) => Expr::Literal(match v.checked_neg() {
                    Some(n) => match i32::try_from(n) {
                        Ok(n) => Datum::Int4(n),
                        Err(_) => Datum::Int8(n),
                    },
                    None => return Err(SqlError::new("22003", "bigint out of range")),
                }),
                other => Expr::Neg(Box::new(other)),
            },
            ast::UnaryOperator::Plus => expr(*inner)?,
            other => return Err(SqlError::unsupported(format!("the operator {other}"))),
        },
        E::BinaryOp { left, op, right } => {
            use ast::BinaryOperator as B;
            let op = match op {
                B::Eq => BinOp::Eq,
                B::NotEq => BinOp::NotEq,
                B::Lt => BinOp::Lt,
                B::LtEq => BinOp::LtEq,
                B::Gt => BinOp::Gt,
                B::GtEq => BinOp::GtEq,
                B::And => BinOp::And,
                B::Or => BinOp::Or,
                B::Plus => BinOp::Plus,
                B::Minus => BinOp::Minus,
                B::Multiply => BinOp::Multiply,
                B::Divide => BinOp::Divide,
                B::Modulo => BinOp::Modulo,
                B::StringConcat => BinOp::Concat,
                other => return Err(SqlError::unsupported(format!("the operator {other}"))),
            };
            Expr::Binary(Box::new(expr(*left)?), op, Box::new(expr(*right)?))
        }
        E::IsNull(inner) => Expr::IsNull(Box::new(expr(*inner)?), false),
        E::IsNotNull(inner) => Expr::IsNull(Box::new(expr(*inner)?), true),
        E::Cast {
            expr: inner,
            data_type,
            ..
        } => Expr::Cast(Box::new(expr(*inner)?), sql_type(&data_type)?),
        E::TypedString(ts) => Expr::Cast(
            Box::new(Expr::Literal(Datum::Text(match ts.value.value {
                ast::Value::SingleQuotedString(s) => s,
                other => other.to_string(),
            }))),
            sql_type(&ts.data_type)?,
        ),
        E::Function(f) => function(f)?,
        other => {
            return Err(SqlError::unsupported(format!(
                "the expression {}",
                first_words(&other.to_string())
            )))
        }
    })
}

fn function(f: ast::Function) -> Result<Expr, SqlError> {
    let name = f
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident)
        .ok_or_else(|| SqlError::unsupported(format!("the function {}", f.name)))?;
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err(SqlError::unsupported("FILTER, OVER or WITHIN GROUP"));
    }
    let mut args = Vec::new();
    let mut star = false;
    match f.args {
        ast::FunctionArguments::None => {}
        ast::FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                return Err(SqlError::unsupported(format!(
                    "DISTINCT or ORDER BY in {name}()"
                )));
            }
            for a in list.args {
                match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => args.push(expr(e)?),
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                    other => return Err(SqlError::unsupported(format!("the argument {other}"))),
                }
            }
        }
        ast::FunctionArguments::Subquery(_) => return Err(SqlError::unsupported("a subquery")),
    }
    Ok(Expr::Call { name, args, star })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distributed_tail_is_read_after_the_statement() {
        let s = parse(
            "create table t (id bigint primary key, v text) distributed by (id); \
             CREATE TABLE r (a int, b text) DISTRIBUTED REPLICATED; \
             create table IF NOT EXISTS x (a int, b text) with (appendoptimized=true) distributed randomly",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        let Statement::CreateTable { schema, .. } = &s[0] else {
            panic!()
        };
        assert_eq!(
            (schema.primary_key, schema.distribution),
            (Some(0), Distribution::By(0))
        );
        let Statement::CreateTable { schema, .. } = &s[1] else {
            panic!()
        };
        assert_eq!(schema.distribution, Distribution::Replicated);
        let Statement::CreateTable {
            schema,
            if_not_exists,
            ..
        } = &s[2]
        else {
            panic!()
        };
        assert!(*if_not_exists);
        assert_eq!(
            (schema.distribution, schema.kind),
            (Distribution::Randomly, TableKind::AppendOptimized)
        );
        // A quoted word or one inside a string is no tail.
        let s = parse("insert into t values (1, 'distributed by (x)')").unwrap();
        assert!(matches!(&s[0], Statement::Insert { .. }));
    }

    #[test]
    fn what_lies_outside_the_subset_is_refused_with_its_code() {
        let code = |sql: &str| parse(sql).unwrap_err().code;
        assert_eq!(code("selec 1"), "42601");
        assert_eq!(code("create table t (a int) distributed by a"), "42601");
        assert_eq!(
            code("create table t (a int, b int, primary key (a)) distributed by (b)"),
            "42P16"
        );
        assert_eq!(code("create table t (a numeric)"), "0A000");
        assert_eq!(code("select a from t group by a"), "0A000");
        assert_eq!(
            code("insert into t values (1) distributed randomly"),
            "42601"
        );
        assert_eq!(code("create table t (a int) distributed by (z)"), "42703");
        assert_eq!(code("select 99999999999999999999"), "22003");
    }
}
