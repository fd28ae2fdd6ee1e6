//! Domain types as TEXT columns, on every backend of the store's
//! `MultiConnection`: an enum by its stable name, an id by its hyphenated
//! UUID. A value that does not read back (a name this version does not know,
//! text that is not a UUID) is a deserialization error naming the column's
//! type, never a silent default.

/// `ToSql`/`FromSql` over `Text` for a type with `as_str(self) -> &'static str`
/// and `parse(&str) -> Option<Self>` (enums, the code catalogue). The type
/// derives `diesel::expression::AsExpression` and `diesel::deserialize::FromSqlRow` with
/// `#[diesel(sql_type = diesel::sql_types::Text)]`.
macro_rules! text_column {
    ($ty:ty) => {
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

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text: String =
                    diesel::deserialize::FromSql::<diesel::sql_types::Text, DB>::from_sql(bytes)?;
                <$ty>::parse(&text)
                    .ok_or_else(|| format!("`{text}` is not a known {}", stringify!($ty)).into())
            }
        }
    };
}
pub(crate) use text_column;

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

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text: String =
                    diesel::deserialize::FromSql::<diesel::sql_types::Text, DB>::from_sql(bytes)?;
                uuid::Uuid::try_parse(&text)
                    .map(Self)
                    .map_err(|e| format!("`{text}` is not a {}: {e}", stringify!($ty)).into())
            }
        }
    };
}
pub(crate) use uuid_column;
