//! Entity keys: the table's key type, and keys converted to it exactly.
//!
//! A caller may pass a key as any type that casts to the table's key type
//! (`fire('orders', 42, …)` on a bigint key). Before anything uses such a
//! key it is cast to the key type *and back*, and the round trip must give
//! the caller's value again: `1.5` is refused on a bigint key rather than
//! rounded to 2. From then on only [`Key`] values travel, and a `Key` is by
//! construction a datum of the table's key type, so it is never read as
//! another type (which, for a by-reference type, would crash the server).

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::{clip, ErrorKind, FsmError, FsmResult};
use crate::spi_plan::PlanCache;
use crate::sql;

/// How a type is stored (`pg_type`), and its array type.
#[derive(Clone, Copy)]
pub struct TypeStorage {
    pub type_oid: pg_sys::Oid,
    pub len: i16,
    pub by_value: bool,
    pub align: std::ffi::c_char,
    pub array_type: pg_sys::Oid,
}

impl TypeStorage {
    pub fn of(type_oid: pg_sys::Oid) -> TypeStorage {
        let (mut len, mut by_value, mut align) = (0i16, false, 0 as std::ffi::c_char);
        // SAFETY: syscache lookups of an existing type.
        unsafe {
            pg_sys::get_typlenbyvalalign(type_oid, &mut len, &mut by_value, &mut align);
            TypeStorage {
                type_oid,
                len,
                by_value,
                align,
                array_type: pg_sys::get_array_type(type_oid),
            }
        }
    }
}

/// A datum of a binding's key type. Built only from a column of that type
/// (a tuple of the table, a result column checked to be of that type) or
/// by [`KeyType::convert`].
#[derive(Clone, Copy)]
pub struct Key(pg_sys::Datum);

impl Key {
    /// # Safety
    /// `d` is a non-NULL datum of the binding's key type, valid while used.
    pub unsafe fn of_key_type(d: pg_sys::Datum) -> Key {
        Key(d)
    }

    pub fn datum(self) -> pg_sys::Datum {
        self.0
    }
}

/// The key column's type, with what comparing and converting need.
pub struct KeyType {
    pub storage: TypeStorage,
    /// The key column's type modifier (-1 for none).
    pub typmod: i32,
    /// Schema-qualified, with its modifier: safe after `::` in SQL.
    pub sql: String,
    pub collation: pg_sys::Oid,
    /// The type's default equality (its btree or hash opclass), found by
    /// the type cache, never by operator name.
    equality: pg_sys::Oid,
    /// The same operator for SQL, schema-qualified: `OPERATOR(pg_catalog.=)`.
    pub equality_sql: String,
    /// Round-trip casts, by the caller's type and whether it is an array.
    conversions: PlanCache<(pg_sys::Oid, bool)>,
    /// Whether text read by the type's input function is the key it says,
    /// with nothing rounded, cut or padded: no modifier (numeric(5,2)
    /// rounds, varchar(5) cuts) and not a string type (char(n) pads).
    /// Then a text key needs no round trip: '042' is the bigint 42, and an
    /// upper-case uuid is that uuid.
    text_parses_exactly: bool,
}

impl KeyType {
    pub fn of(type_oid: pg_sys::Oid, typmod: i32, collation: pg_sys::Oid) -> FsmResult<KeyType> {
        let no_equality = || {
            FsmError::new(
                ErrorKind::CannotCoerce,
                format!(
                    "key type {} has no default equality",
                    sql::qualified_type(type_oid, -1)
                ),
            )
        };
        // SAFETY: the type cache entry lives for the backend.
        let operator = unsafe {
            (*pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_EQ_OPR as i32)).eq_opr
        };
        let equality_sql = pgrx::Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.concat('OPERATOR(', pg_catalog.quote_ident(n.nspname::pg_catalog.text),
                                      '.', o.oprname::pg_catalog.text, ')')
               FROM pg_catalog.pg_operator o
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) o.oprnamespace
              WHERE o.oid OPERATOR(pg_catalog.=) $1",
            &[operator.into()],
        )
        .ok()
        .flatten()
        .ok_or_else(no_equality)?;
        let mut category: std::ffi::c_char = 0;
        let mut preferred = false;
        // SAFETY: a syscache lookup of an existing type.
        unsafe { pg_sys::get_type_category_preferred(type_oid, &mut category, &mut preferred) };
        Ok(KeyType {
            text_parses_exactly: typmod < 0 && category as u8 != b'S',
            storage: TypeStorage::of(type_oid),
            typmod,
            sql: sql::qualified_type(type_oid, typmod),
            collation,
            equality: equality_of(type_oid).ok_or_else(no_equality)?,
            equality_sql,
            conversions: PlanCache::default(),
        })
    }

    pub fn oid(&self) -> pg_sys::Oid {
        self.storage.type_oid
    }

    /// Whether two keys are equal by the key type's own equality.
    pub fn equal(&self, a: Key, b: Key) -> bool {
        // SAFETY: both are datums of the key type; the function is the
        // type's own equality, taking two of them.
        unsafe {
            pg_sys::OidFunctionCall2Coll(self.equality, self.collation, a.0, b.0).value() != 0
        }
    }

    /// The key as its type's text output (cold path: messages).
    pub fn text(&self, key: pg_sys::Datum) -> String {
        datum_text(key, self.oid())
    }

    /// `value`, a datum of type `from` (an array of such when `array`),
    /// as the key type (an array of it), exactly; refused with 22P02 when
    /// the round trip does not give `value` back (text the key type parses
    /// exactly needs none, see `text_parses_exactly`), and with PostgreSQL's
    /// own error when no cast exists. Must be called inside SPI; the
    /// result is copied out of it.
    pub fn convert(
        &self,
        value: pg_sys::Datum,
        from: pg_sys::Oid,
        array: bool,
    ) -> FsmResult<pg_sys::Datum> {
        let target_oid = if array {
            self.storage.array_type
        } else {
            self.oid()
        };
        if from == target_oid {
            return Ok(value);
        }
        let target_sql = if array {
            format!("{}[]", self.sql)
        } else {
            self.sql.clone()
        };
        let equality = equality_of(from).ok_or_else(|| {
            FsmError::new(
                ErrorKind::CannotCoerce,
                format!(
                    "a key of type {} cannot be compared, so it cannot be converted exactly to {target_sql}",
                    sql::qualified_type(from, -1)
                ),
            )
        })?;
        let plan = self.conversions.get((from, array), || {
            let from_sql = sql::qualified_type(from, -1);
            (
                format!("SELECT ($1::{from_sql})::{target_sql}, (($1::{from_sql})::{target_sql})::{from_sql}"),
                vec![from],
            )
        });
        let row = plan
            .first_row(&[Some(value)])
            .expect("a SELECT without FROM returns one row");
        let converted = row.typed(1, target_oid)?;
        let back = row.typed(2, from)?;
        let exact = match (converted, back) {
            (Some(_), _) if from == pg_sys::TEXTOID && !array && self.text_parses_exactly => true,
            (Some(_), Some(back)) => {
                // SAFETY: the type's own equality on two datums of type `from`.
                unsafe {
                    pg_sys::OidFunctionCall2Coll(equality, collation_of(from), back, value).value()
                        != 0
                }
            }
            _ => false,
        };
        if !exact {
            return Err(FsmError::new(
                ErrorKind::InvalidTextRepresentation,
                format!(
                    "key {} of type {} is not exactly a value of the table's key type {target_sql}",
                    clip(&datum_text(value, from)),
                    sql::qualified_type(from, -1)
                ),
            )
            .hint(format!("Pass the key as {target_sql}.")));
        }
        let storage = TypeStorage::of(target_oid);
        // SAFETY: a datum of the target type in SPI's memory, copied to the
        // context that was current before SPI_connect.
        Ok(unsafe {
            pg_sys::SPI_datumTransfer(
                converted.expect("checked above"),
                storage.by_value,
                storage.len as i32,
            )
        })
    }
}

/// The default equality function of a type, if it has one.
fn equality_of(type_oid: pg_sys::Oid) -> Option<pg_sys::Oid> {
    // SAFETY: the type cache entry lives for the backend.
    let function = unsafe {
        let entry = pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_EQ_OPR_FINFO as i32);
        (*entry).eq_opr_finfo.fn_oid
    };
    (function != pg_sys::InvalidOid).then_some(function)
}

fn collation_of(type_oid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup; InvalidOid for non-collatable types.
    unsafe { pg_sys::get_typcollation(type_oid) }
}

/// Any datum as its type's text output.
pub fn datum_text(datum: pg_sys::Datum, type_oid: pg_sys::Oid) -> String {
    // SAFETY: the output function of the datum's own type, called on it;
    // every caller passes a datum together with its actual type.
    unsafe {
        let mut output = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
        let text = pg_sys::OidOutputFunctionCall(output, datum);
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}
