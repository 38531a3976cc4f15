//! Type names for schema events, spelled as the server's `format_type(oid, typmod)` spells
//! them, for the built-in types a Relation message can name without the catalog at hand.

/// The name of built-in type `oid` with modifier `typmod` (`-1` for none), or `None` for a
/// type this table does not know (user-defined types, rarer built-ins).
pub(crate) fn builtin_type_name(oid: u32, typmod: i32) -> Option<String> {
    if let Some(element) = array_element(oid) {
        return builtin_type_name(element, typmod).map(|name| format!("{name}[]"));
    }
    let with_precision = |base: &str, suffix: &str| {
        if typmod >= 0 {
            format!("{base}({typmod}){suffix}")
        } else {
            format!("{base}{suffix}")
        }
    };
    let with_length = |base: &str, bare: &str| {
        if typmod >= 4 {
            format!("{base}({})", typmod - 4)
        } else {
            bare.to_owned()
        }
    };
    Some(match oid {
        16 => "boolean".into(),
        17 => "bytea".into(),
        18 => "\"char\"".into(),
        19 => "name".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        25 => "text".into(),
        26 => "oid".into(),
        114 => "json".into(),
        142 => "xml".into(),
        650 => "cidr".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        774 => "macaddr8".into(),
        790 => "money".into(),
        829 => "macaddr".into(),
        869 => "inet".into(),
        1042 => with_length("character", "bpchar"),
        1043 => with_length("character varying", "character varying"),
        1082 => "date".into(),
        1083 => with_precision("time", " without time zone"),
        1114 => with_precision("timestamp", " without time zone"),
        1184 => with_precision("timestamp", " with time zone"),
        1186 => "interval".into(),
        1266 => with_precision("time", " with time zone"),
        1560 => with_precision("bit", ""),
        1562 => with_precision("bit varying", ""),
        1700 if typmod >= 4 => {
            let m = typmod - 4;
            // PostgreSQL 15 stores the scale in the low 11 bits, sign-extended.
            let scale = ((m & 0x7ff) ^ 1024) - 1024;
            format!("numeric({},{scale})", (m >> 16) & 0xffff)
        }
        1700 => "numeric".into(),
        2950 => "uuid".into(),
        3614 => "tsvector".into(),
        3802 => "jsonb".into(),
        3904 => "int4range".into(),
        3906 => "numrange".into(),
        3908 => "tsrange".into(),
        3910 => "tstzrange".into(),
        3912 => "daterange".into(),
        3926 => "int8range".into(),
        4451 => "int4multirange".into(),
        4532 => "nummultirange".into(),
        4533 => "tsmultirange".into(),
        4534 => "tstzmultirange".into(),
        4535 => "datemultirange".into(),
        4536 => "int8multirange".into(),
        600 => "point".into(),
        601 => "lseg".into(),
        602 => "path".into(),
        603 => "box".into(),
        604 => "polygon".into(),
        628 => "line".into(),
        718 => "circle".into(),
        3220 => "pg_lsn".into(),
        3615 => "tsquery".into(),
        2970 => "txid_snapshot".into(),
        5038 => "pg_snapshot".into(),
        5069 => "xid8".into(),
        28 => "xid".into(),
        29 => "cid".into(),
        27 => "tid".into(),
        _ => return None,
    })
}

/// The element type of the built-in array types [`builtin_type_name`] knows.
fn array_element(oid: u32) -> Option<u32> {
    Some(match oid {
        1000 => 16,
        1001 => 17,
        1002 => 18,
        1003 => 19,
        1016 => 20,
        1005 => 21,
        1007 => 23,
        1009 => 25,
        1028 => 26,
        199 => 114,
        143 => 142,
        651 => 650,
        1021 => 700,
        1022 => 701,
        775 => 774,
        791 => 790,
        1040 => 829,
        1041 => 869,
        1014 => 1042,
        1015 => 1043,
        1182 => 1082,
        1183 => 1083,
        1115 => 1114,
        1185 => 1184,
        1187 => 1186,
        1270 => 1266,
        1561 => 1560,
        1563 => 1562,
        1231 => 1700,
        2951 => 2950,
        3807 => 3802,
        3905 => 3904,
        3907 => 3906,
        3909 => 3908,
        3911 => 3910,
        3913 => 3912,
        3927 => 3926,
        3643 => 3614,
        1017 => 600,
        1020 => 603,
        3221 => 3220,
        3645 => 3615,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::builtin_type_name as name;

    #[test]
    fn names_match_format_type() {
        assert_eq!(name(23, -1).as_deref(), Some("integer"));
        assert_eq!(
            name(1700, (12 << 16 | 2) + 4).as_deref(),
            Some("numeric(12,2)")
        );
        assert_eq!(name(1700, -1).as_deref(), Some("numeric"));
        assert_eq!(name(1043, 24).as_deref(), Some("character varying(20)"));
        assert_eq!(name(1042, 5).as_deref(), Some("character(1)"));
        assert_eq!(
            name(1184, 3).as_deref(),
            Some("timestamp(3) with time zone")
        );
        assert_eq!(
            name(1114, -1).as_deref(),
            Some("timestamp without time zone")
        );
        assert_eq!(name(1009, -1).as_deref(), Some("text[]"));
        assert_eq!(
            name(1231, (5 << 16 | 1) + 4).as_deref(),
            Some("numeric(5,1)[]")
        );
        // As `format_type` spells them (checked against PostgreSQL 15).
        assert_eq!(name(4451, -1).as_deref(), Some("int4multirange"));
        assert_eq!(name(600, -1).as_deref(), Some("point"));
        assert_eq!(name(3220, -1).as_deref(), Some("pg_lsn"));
        assert_eq!(name(3615, -1).as_deref(), Some("tsquery"));
        assert_eq!(name(3905, -1).as_deref(), Some("int4range[]"));
        assert_eq!(name(1020, -1).as_deref(), Some("box[]"));
        assert_eq!(name(16_385, -1), None);
    }
}
