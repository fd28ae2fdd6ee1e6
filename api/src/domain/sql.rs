//! Domain types as TEXT columns, on every backend of the store's
//! `MultiConnection`: an enum by its stable name, an id by its hyphenated
//! UUID. A value that does not read back (a name this version does not know,
//! text that is not a UUID) is a deserialization error naming the column's
//! type, never a silent default.

/// `ToSql`/`FromSql` over `Text` for a type written from its `as_str` (which
/// may borrow from the value: `&self -> &str`, or `self -> &'static str`) and
/// read back through a parse: by default `parse(&str) -> Option<Self>` (enums,
/// the code catalogue, the actor), or the closure given second, returning a
/// `Result` whose error says why (`OrgId`). The type derives
/// `diesel::expression::AsExpression` and `diesel::deserialize::FromSqlRow`
/// with `#[diesel(sql_type = diesel::sql_types::Text)]`.
macro_rules! text_column {
    ($ty:ty) => {
        $crate::domain::sql::text_column!($ty, |text: &str| {
            <$ty>::parse(text).ok_or_else(|| format!("`{text}` is not a known {}", stringify!($ty)))
        });
    };
    ($ty:ty, $parse:expr) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        $crate::domain::sql::from_text!($ty, $parse);
    };
}
pub(crate) use text_column;

/// `FromSql` over `Text` through `parse: Fn(&str) -> Result<Self, E>`, `E` a
/// message (the one half every TEXT column shares).
macro_rules! from_text {
    ($ty:ty, $parse:expr) => {
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                use diesel::{deserialize::FromSql, sql_types::Text};
                let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                ($parse)(text.as_str()).map_err(Into::into)
            }
        }
    };
}
pub(crate) use from_text;

/// `ToSql`/`FromSql` over `Text` for a newtype over `uuid::Uuid`, stored
/// hyphenated in lower case (as every id has been stored).
macro_rules! uuid_column {
    ($ty:ident) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                out.set_value(self.0.hyphenated().to_string());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        #[cfg(feature = "postgres")]
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                use std::io::Write;
                let mut buf = uuid::Uuid::encode_buffer();
                out.write_all(self.0.hyphenated().encode_lower(&mut buf).as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, crate::store::MultiBackend> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, crate::store::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((diesel::sql_types::Text, self));
                Ok(diesel::serialize::IsNull::No)
            }
        }

        $crate::domain::sql::from_text!($ty, |text: &str| {
            uuid::Uuid::try_parse(text)
                .map($ty)
                .map_err(|e| format!("`{text}` is not a {}: {e}", stringify!($ty)))
        });
    };
}
pub(crate) use uuid_column;
