//! The SQL the sink sends, per database: identifier quoting, placeholders, column types for
//! `auto.create`, and the insert, upsert, update and delete statements.
//!
//! Identifiers are always quoted (doubling the quote character inside a name), or, with
//! `quote.sql.identifiers=never`, accepted only when they are plain identifiers: a topic or
//! field name can never inject SQL.

use wasmconnect_sdk::sql::Dialect;

/// A column's type as the sink sees it: the Connect type, with its logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Decimal(i32),
    Date,
    Time,
    Timestamp,
    /// A struct, array or map, written as JSON text.
    Json,
}

/// A column to create or add.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub col_type: ColType,
    pub optional: bool,
    pub key: bool,
    /// A literal default, already rendered as SQL.
    pub default: Option<String>,
}

/// A column of an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbColumn {
    pub name: String,
    /// PostgreSQL: the type parameters are cast to (its `udt_name`).
    pub cast: Option<String>,
}

/// A table, possibly qualified with its database or schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub schema: Option<String>,
    pub name: String,
}

impl TableId {
    /// `table.name.format` with `${topic}` replaced, split at the first dot.
    pub fn from_format(format: &str, topic: &str) -> TableId {
        let full = format.replace("${topic}", topic);
        match full.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => TableId {
                schema: Some(schema.to_owned()),
                name: name.to_owned(),
            },
            _ => TableId {
                schema: None,
                name: full,
            },
        }
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Builds statements for one database.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    pub dialect: Dialect,
    pub quote: bool,
}

impl Sql {
    /// A quoted identifier.
    ///
    /// # Errors
    /// Unquoted mode and a name that is not a plain identifier; an empty name.
    pub fn ident(self, name: &str) -> Result<String, String> {
        self.dialect.identifier(name, self.quote)
    }

    /// # Errors
    /// A name that cannot be an identifier.
    pub fn table(self, table: &TableId) -> Result<String, String> {
        match &table.schema {
            Some(s) => Ok(format!("{}.{}", self.ident(s)?, self.ident(&table.name)?)),
            None => self.ident(&table.name),
        }
    }

    /// Placeholder number `n` (1-based) for a value of `column`.
    fn param(self, n: usize, column: &DbColumn) -> String {
        match (self.dialect, &column.cast) {
            // Values are bound with their own types (text for decimals and nulls): a cast
            // to the column's type makes PostgreSQL accept them.
            (Dialect::Postgres, Some(cast)) => {
                let ty = self.ident(cast).unwrap_or_else(|_| "text".into());
                format!("CAST(${n} AS {ty})")
            }
            (Dialect::Postgres, None) => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// The SQL type `auto.create` and `auto.evolve` use for a column.
    pub fn column_type(self, t: ColType, key: bool) -> String {
        match self.dialect {
            Dialect::MySql | Dialect::MariaDb => match t {
                ColType::Int8 | ColType::Boolean => "TINYINT".into(),
                ColType::Int16 => "SMALLINT".into(),
                ColType::Int32 => "INT".into(),
                ColType::Int64 => "BIGINT".into(),
                ColType::Float32 => "FLOAT".into(),
                ColType::Float64 => "DOUBLE".into(),
                // MySQL cannot index TEXT without a length: a key gets VARCHAR.
                ColType::String if key => "VARCHAR(255)".into(),
                ColType::String | ColType::Json => "TEXT".into(),
                ColType::Bytes if key => "VARBINARY(255)".into(),
                ColType::Bytes => "VARBINARY(1024)".into(),
                ColType::Decimal(scale) => format!("DECIMAL(65,{})", scale.clamp(0, 30)),
                ColType::Date => "DATE".into(),
                ColType::Time => "TIME(3)".into(),
                ColType::Timestamp => "DATETIME(3)".into(),
            },
            Dialect::Postgres => match t {
                ColType::Int8 | ColType::Int16 => "SMALLINT".into(),
                ColType::Int32 => "INT".into(),
                ColType::Int64 => "BIGINT".into(),
                ColType::Float32 => "REAL".into(),
                ColType::Float64 => "DOUBLE PRECISION".into(),
                ColType::Boolean => "BOOLEAN".into(),
                ColType::String | ColType::Json => "TEXT".into(),
                ColType::Bytes => "BYTEA".into(),
                ColType::Decimal(_) => "DECIMAL".into(),
                ColType::Date => "DATE".into(),
                ColType::Time => "TIME".into(),
                ColType::Timestamp => "TIMESTAMP".into(),
            },
            Dialect::Sqlite => match t {
                ColType::Int8
                | ColType::Int16
                | ColType::Int32
                | ColType::Int64
                | ColType::Boolean => "INTEGER".into(),
                ColType::Float32 | ColType::Float64 => "REAL".into(),
                ColType::String | ColType::Json => "TEXT".into(),
                ColType::Bytes => "BLOB".into(),
                ColType::Decimal(_) => "NUMERIC".into(),
                ColType::Date => "DATE".into(),
                ColType::Time => "TIME".into(),
                ColType::Timestamp => "DATETIME".into(),
            },
        }
    }

    fn column_definition(self, c: &ColumnSpec) -> Result<String, String> {
        let mut def = format!(
            "{} {}",
            self.ident(&c.name)?,
            self.column_type(c.col_type, c.key)
        );
        if let Some(default) = &c.default {
            def.push_str(" DEFAULT ");
            def.push_str(default);
        } else if c.optional && !c.key {
            def.push_str(" NULL");
        } else {
            def.push_str(" NOT NULL");
        }
        Ok(def)
    }

    /// `CREATE TABLE`, one column per line, with the key columns as the primary key.
    ///
    /// # Errors
    /// A name that cannot be an identifier.
    pub fn create_table(self, table: &TableId, columns: &[ColumnSpec]) -> Result<String, String> {
        let mut lines = columns
            .iter()
            .map(|c| self.column_definition(c))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| self.ident(&c.name))
            .collect::<Result<Vec<_>, _>>()?;
        if !keys.is_empty() {
            lines.push(format!("PRIMARY KEY({})", keys.join(",")));
        }
        Ok(format!(
            "CREATE TABLE {} (\n{})",
            self.table(table)?,
            lines.join(",\n")
        ))
    }

    /// `ALTER TABLE ... ADD` for the missing columns: one statement, except on SQLite,
    /// which adds one column per statement.
    ///
    /// # Errors
    /// A name that cannot be an identifier.
    pub fn add_columns(
        self,
        table: &TableId,
        columns: &[ColumnSpec],
    ) -> Result<Vec<String>, String> {
        let table = self.table(table)?;
        let defs = columns
            .iter()
            .map(|c| self.column_definition(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self.dialect {
            Dialect::Sqlite => defs
                .iter()
                .map(|d| format!("ALTER TABLE {table} ADD COLUMN {d}"))
                .collect(),
            Dialect::Postgres => vec![format!(
                "ALTER TABLE {table} {}",
                defs.iter()
                    .map(|d| format!("ADD COLUMN {d}"))
                    .collect::<Vec<_>>()
                    .join(",\n")
            )],
            Dialect::MySql | Dialect::MariaDb => vec![format!(
                "ALTER TABLE {table} {}",
                defs.iter()
                    .map(|d| format!("ADD {d}"))
                    .collect::<Vec<_>>()
                    .join(",\n")
            )],
        })
    }

    /// `rows` parenthesised groups of placeholders for `columns`, numbered on from 1; a
    /// single column without parentheses when `bare_single` (for `k IN (?,?)`).
    fn values_rows(self, columns: &[&DbColumn], rows: usize, bare_single: bool) -> String {
        let mut n = 0;
        (0..rows)
            .map(|_| {
                let params: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        n += 1;
                        self.param(n, c)
                    })
                    .collect();
                if bare_single && params.len() == 1 {
                    params.join("")
                } else {
                    format!("({})", params.join(","))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A multi-row `INSERT`; with `upsert`, rows whose key exists update the non-key
    /// columns instead. `columns` lists the key columns first.
    ///
    /// # Errors
    /// A name that cannot be an identifier.
    pub fn insert(
        self,
        table: &TableId,
        columns: &[&DbColumn],
        key_count: usize,
        rows: usize,
        upsert: bool,
    ) -> Result<String, String> {
        let names = columns
            .iter()
            .map(|c| self.ident(&c.name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sql = format!(
            "INSERT INTO {}({}) VALUES {}",
            self.table(table)?,
            names.join(","),
            self.values_rows(columns, rows, false)
        );
        if !upsert {
            return Ok(sql);
        }
        let (keys, rest) = names.split_at(key_count.min(names.len()));
        match self.dialect {
            Dialect::MySql | Dialect::MariaDb => {
                // VALUES(col) is accepted by MariaDB and MySQL alike (MySQL 8.0.20+ warns).
                let updates = if rest.is_empty() { keys } else { rest };
                let set = updates
                    .iter()
                    .map(|c| format!("{c}=VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(",");
                sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {set}"));
            }
            Dialect::Postgres | Dialect::Sqlite => {
                sql.push_str(&format!(" ON CONFLICT ({}) ", keys.join(",")));
                if rest.is_empty() {
                    sql.push_str("DO NOTHING");
                } else {
                    let set = rest
                        .iter()
                        .map(|c| format!("{c}=EXCLUDED.{c}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    sql.push_str(&format!("DO UPDATE SET {set}"));
                }
            }
        }
        Ok(sql)
    }

    /// `UPDATE ... SET non-key = ? WHERE key = ?`: parameters are the non-key values, then
    /// the key values.
    ///
    /// # Errors
    /// A name that cannot be an identifier.
    pub fn update(
        self,
        table: &TableId,
        keys: &[&DbColumn],
        rest: &[&DbColumn],
    ) -> Result<String, String> {
        let mut n = 0;
        let mut set = Vec::new();
        for c in rest {
            n += 1;
            set.push(format!("{} = {}", self.ident(&c.name)?, self.param(n, c)));
        }
        let mut conditions = Vec::new();
        for c in keys {
            n += 1;
            conditions.push(format!("{} = {}", self.ident(&c.name)?, self.param(n, c)));
        }
        Ok(format!(
            "UPDATE {} SET {} WHERE {}",
            self.table(table)?,
            set.join(", "),
            conditions.join(" AND ")
        ))
    }

    /// `DELETE` of many rows by key.
    ///
    /// # Errors
    /// A name that cannot be an identifier.
    pub fn delete(
        self,
        table: &TableId,
        keys: &[&DbColumn],
        rows: usize,
    ) -> Result<String, String> {
        let names = keys
            .iter()
            .map(|c| self.ident(&c.name))
            .collect::<Result<Vec<_>, _>>()?;
        let target = if names.len() == 1 {
            names[0].clone()
        } else {
            format!("({})", names.join(","))
        };
        let values = self.values_rows(keys, rows, true);
        Ok(format!(
            "DELETE FROM {} WHERE {target} IN ({values})",
            self.table(table)?
        ))
    }

    /// Reads a table's columns: name, then (PostgreSQL) the type name used for casts.
    /// Parameters: schema (or null for the current one), table.
    pub fn columns_query(self) -> &'static str {
        match self.dialect {
            Dialect::MySql | Dialect::MariaDb => {
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"
            }
            Dialect::Postgres => {
                "SELECT CAST(column_name AS text), CAST(udt_name AS text) FROM information_schema.columns \
                 WHERE table_schema = COALESCE(CAST($1 AS text), current_schema()) AND table_name = CAST($2 AS text) \
                 ORDER BY ordinal_position"
            }
            Dialect::Sqlite => "SELECT name, type FROM pragma_table_info(?2, COALESCE(?1, 'main'))",
        }
    }

    /// Whether the table is a view. Parameters as for [`Sql::columns_query`].
    pub fn view_query(self) -> &'static str {
        match self.dialect {
            Dialect::MySql | Dialect::MariaDb => {
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND TABLE_TYPE = 'VIEW'"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.views \
                 WHERE table_schema = COALESCE(CAST($1 AS text), current_schema()) AND table_name = CAST($2 AS text)"
            }
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view' AND name = ?2 AND COALESCE(?1, 'main') = 'main'"
            }
        }
    }

    /// Most parameters one statement may carry.
    pub fn max_params(self) -> usize {
        match self.dialect {
            Dialect::Sqlite => 32_000,
            _ => 65_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> DbColumn {
        DbColumn {
            name: name.into(),
            cast: None,
        }
    }

    const MYSQL: Sql = Sql {
        dialect: Dialect::MySql,
        quote: true,
    };

    #[test]
    fn quotes_identifiers_so_names_cannot_inject() {
        assert_eq!(MYSQL.ident("a`b").expect("q"), "`a``b`");
        let pg = Sql {
            dialect: Dialect::Postgres,
            quote: true,
        };
        assert_eq!(
            pg.ident("x\"; DROP TABLE t; --").expect("q"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        let never = Sql {
            dialect: Dialect::MySql,
            quote: false,
        };
        assert_eq!(never.ident("plain_1").expect("plain"), "plain_1");
        assert!(never.ident("a b").is_err());
        assert!(MYSQL.ident("").is_err());
    }

    #[test]
    fn mysql_statements_match_confluent_shapes() {
        let t = TableId::from_format("${topic}", "actor");
        let (id, first, last) = (col("actor_id"), col("first_name"), col("last_name"));
        let cols = [&id, &first, &last];
        assert_eq!(
            MYSQL.insert(&t, &cols, 1, 2, true).expect("upsert"),
            "INSERT INTO `actor`(`actor_id`,`first_name`,`last_name`) VALUES (?,?,?),(?,?,?) ON DUPLICATE KEY UPDATE `first_name`=VALUES(`first_name`),`last_name`=VALUES(`last_name`)"
        );
        assert_eq!(
            MYSQL.insert(&t, &[&id], 1, 1, true).expect("keys only"),
            "INSERT INTO `actor`(`actor_id`) VALUES (?) ON DUPLICATE KEY UPDATE `actor_id`=VALUES(`actor_id`)"
        );
        assert_eq!(
            MYSQL.update(&t, &[&id], &[&first, &last]).expect("update"),
            "UPDATE `actor` SET `first_name` = ?, `last_name` = ? WHERE `actor_id` = ?"
        );
        assert_eq!(
            MYSQL.delete(&t, &[&id], 3).expect("delete"),
            "DELETE FROM `actor` WHERE `actor_id` IN (?,?,?)"
        );
        assert_eq!(
            MYSQL.delete(&t, &[&id, &first], 2).expect("delete"),
            "DELETE FROM `actor` WHERE (`actor_id`,`first_name`) IN ((?,?),(?,?))"
        );
    }

    #[test]
    fn postgres_casts_parameters_and_upserts_on_conflict() {
        let pg = Sql {
            dialect: Dialect::Postgres,
            quote: true,
        };
        let t = TableId::from_format("public.${topic}", "orders");
        assert_eq!(t.schema.as_deref(), Some("public"));
        let id = DbColumn {
            name: "id".into(),
            cast: Some("int8".into()),
        };
        let total = DbColumn {
            name: "total".into(),
            cast: Some("numeric".into()),
        };
        assert_eq!(
            pg.insert(&t, &[&id, &total], 1, 1, true).expect("upsert"),
            "INSERT INTO \"public\".\"orders\"(\"id\",\"total\") VALUES (CAST($1 AS \"int8\"),CAST($2 AS \"numeric\")) ON CONFLICT (\"id\") DO UPDATE SET \"total\"=EXCLUDED.\"total\""
        );
        assert_eq!(
            pg.delete(&t, &[&id], 2).expect("delete"),
            "DELETE FROM \"public\".\"orders\" WHERE \"id\" IN (CAST($1 AS \"int8\"),CAST($2 AS \"int8\"))"
        );
    }

    #[test]
    fn create_table_uses_key_able_string_columns_on_mysql() {
        let t = TableId::from_format("${topic}", "t");
        let cols = [
            ColumnSpec {
                name: "__connect_topic".into(),
                col_type: ColType::String,
                optional: false,
                key: true,
                default: None,
            },
            ColumnSpec {
                name: "note".into(),
                col_type: ColType::String,
                optional: true,
                key: false,
                default: None,
            },
            ColumnSpec {
                name: "amount".into(),
                col_type: ColType::Decimal(2),
                optional: false,
                key: false,
                default: Some("'0'".into()),
            },
        ];
        assert_eq!(
            MYSQL.create_table(&t, &cols).expect("create"),
            "CREATE TABLE `t` (\n`__connect_topic` VARCHAR(255) NOT NULL,\n`note` TEXT NULL,\n`amount` DECIMAL(65,2) DEFAULT '0',\nPRIMARY KEY(`__connect_topic`))"
        );
        assert_eq!(
            MYSQL.add_columns(&t, &cols[1..2]).expect("alter"),
            vec!["ALTER TABLE `t` ADD `note` TEXT NULL".to_owned()]
        );
    }
}
