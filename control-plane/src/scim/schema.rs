//! SCIM schema definitions (RFC 7643 §4, §8.7) for Users, Groups and the enterprise extension,
//! used to canonicalise attribute names, apply per-attribute case rules and serve `/Schemas`.

use serde_json::{json, Value};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// SCIM 1.x core URN that some clients (Google's provisioning client) list beside the 2.0 one.
pub const SCIM1_CORE_URN: &str = "urn:scim:schemas:core:1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute of a schema, with the characteristics RFC 7643 §2.2 gives it.
#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub sub_attributes: &'static [AttrDef],
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

impl AttrDef {
    /// Case-insensitive lookup of a sub-attribute.
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A schema: its URN and attributes.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    /// Case-insensitive lookup of a top-level attribute.
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

const fn base(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        sub_attributes: &[],
        canonical_values: &[],
        reference_types: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    base(name, AttrType::String, description)
}

const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    base(name, AttrType::Boolean, description)
}

const fn typed_value(canonical: &'static [&'static str]) -> AttrDef {
    AttrDef {
        canonical_values: canonical,
        ..string("type", "A label indicating the attribute's function.")
    }
}

const PRIMARY: AttrDef = boolean(
    "primary",
    "Indicates the primary or preferred attribute value.",
);
const DISPLAY: AttrDef = string(
    "display",
    "A human-readable name, primarily used for display purposes.",
);

/// Sub-attributes shared by the simple multi-valued attributes (emails, phoneNumbers, ims, photos, …).
macro_rules! multi_value_subs {
    ($value:expr, $canonical:expr) => {
        &[$value, DISPLAY, typed_value($canonical), PRIMARY]
    };
}

const NAME_SUBS: &[AttrDef] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name of the User."),
    string("givenName", "The given name of the User."),
    string("middleName", "The middle name(s) of the User."),
    string("honorificPrefix", "The honorific prefix(es) of the User."),
    string("honorificSuffix", "The honorific suffix(es) of the User."),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    string("formatted", "The full mailing address."),
    string("streetAddress", "The full street address component."),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    typed_value(&["work", "home", "other"]),
    PRIMARY,
];

const GROUP_REF_SUBS: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..string("value", "The identifier of the User's group.")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        reference_types: &["User", "Group"],
        ..base(
            "$ref",
            AttrType::Reference,
            "The URI of the corresponding 'Group' resource.",
        )
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..DISPLAY
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        canonical_values: &["direct", "indirect"],
        ..string("type", "How the membership was derived.")
    },
];

pub static USER_SCHEMA: SchemaDef = SchemaDef {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &[
        AttrDef {
            required: true,
            uniqueness: Uniqueness::Server,
            ..string("userName", "Unique identifier for the User, used to sign in. Case-insensitive.")
        },
        AttrDef { sub_attributes: NAME_SUBS, ..base("name", AttrType::Complex, "The components of the user's name.") },
        string("displayName", "The name of the User, suitable for display to end-users."),
        string("nickName", "The casual way to address the user."),
        AttrDef { reference_types: &["external"], ..base("profileUrl", AttrType::Reference, "A URI of the User's online profile.") },
        string("title", "The user's title, such as \"Vice President\"."),
        string("userType", "Identifies the relationship between the organization and the user."),
        string("preferredLanguage", "The User's preferred written or spoken language."),
        string("locale", "The User's default location for localizing content."),
        string("timezone", "The User's time zone in the Olson database format."),
        boolean("active", "The User's administrative status."),
        AttrDef {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            ..string("password", "The User's cleartext password (accepted and never stored).")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(string("value", "Email address."), &["work", "home", "other"]),
            ..base("emails", AttrType::Complex, "Email addresses for the user.")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(string("value", "Phone number."), &["work", "home", "mobile", "fax", "pager", "other"]),
            ..base("phoneNumbers", AttrType::Complex, "Phone numbers for the User.")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(string("value", "Instant messaging address."), &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            ..base("ims", AttrType::Complex, "Instant messaging addresses for the User.")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(base("value", AttrType::Reference, "URL of a photo of the User."), &["photo", "thumbnail"]),
            ..base("photos", AttrType::Complex, "URLs of photos of the User.")
        },
        AttrDef { multi_valued: true, sub_attributes: ADDRESS_SUBS, ..base("addresses", AttrType::Complex, "A physical mailing address for this User.") },
        AttrDef {
            multi_valued: true,
            mutability: Mutability::ReadOnly,
            sub_attributes: GROUP_REF_SUBS,
            ..base("groups", AttrType::Complex, "The groups the user belongs to (read-only; change membership through Groups).")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(string("value", "The value of an entitlement."), &[]),
            ..base("entitlements", AttrType::Complex, "Entitlements the User has.")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(string("value", "The value of a role; a primary role names a Palisade role."), &[]),
            ..base("roles", AttrType::Complex, "Roles for the User. The primary role's value names a Palisade role (admin, security, developer, read-only).")
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: multi_value_subs!(base("value", AttrType::Binary, "The certificate value."), &[]),
            ..base("x509Certificates", AttrType::Complex, "DER-encoded X.509 certificates issued to the User.")
        },
    ],
};

pub static ENTERPRISE_USER_SCHEMA: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        string("costCenter", "Identifies the name of a cost center."),
        string("organization", "Identifies the name of an organization."),
        string("division", "Identifies the name of a division."),
        string("department", "Identifies the name of a department."),
        AttrDef {
            sub_attributes: &[
                string(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                AttrDef {
                    reference_types: &["User"],
                    ..base(
                        "$ref",
                        AttrType::Reference,
                        "The URI of the manager's User resource.",
                    )
                },
                AttrDef {
                    mutability: Mutability::ReadOnly,
                    ..string("displayName", "The displayName of the User's manager.")
                },
            ],
            ..base("manager", AttrType::Complex, "The User's manager.")
        },
    ],
};

pub static GROUP_SCHEMA: SchemaDef = SchemaDef {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &[
        AttrDef {
            required: true,
            uniqueness: Uniqueness::Server,
            ..string(
                "displayName",
                "A human-readable name for the Group; unique within the organisation.",
            )
        },
        AttrDef {
            multi_valued: true,
            sub_attributes: &[
                AttrDef {
                    mutability: Mutability::Immutable,
                    ..string("value", "Identifier of the member of this Group.")
                },
                AttrDef {
                    mutability: Mutability::Immutable,
                    reference_types: &["User", "Group"],
                    ..base(
                        "$ref",
                        AttrType::Reference,
                        "The URI of the member resource.",
                    )
                },
                AttrDef {
                    mutability: Mutability::ReadOnly,
                    ..DISPLAY
                },
                AttrDef {
                    mutability: Mutability::Immutable,
                    canonical_values: &["User", "Group"],
                    ..string("type", "The type of member.")
                },
            ],
            ..base(
                "members",
                AttrType::Complex,
                "A list of members of the Group.",
            )
        },
    ],
};

/// Attributes every resource has, outside any schema's attribute list (RFC 7643 §3.1).
pub static COMMON_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        case_exact: true,
        mutability: Mutability::ReadOnly,
        returned: Returned::Always,
        uniqueness: Uniqueness::Server,
        ..string(
            "id",
            "Unique, stable, server-assigned identifier of the resource.",
        )
    },
    AttrDef {
        case_exact: true,
        ..string(
            "externalId",
            "Identifier of the resource as defined by the provisioning client.",
        )
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        sub_attributes: &[
            AttrDef {
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..string("resourceType", "The name of the resource type.")
            },
            AttrDef {
                mutability: Mutability::ReadOnly,
                ..base(
                    "created",
                    AttrType::DateTime,
                    "When the resource was added.",
                )
            },
            AttrDef {
                mutability: Mutability::ReadOnly,
                ..base(
                    "lastModified",
                    AttrType::DateTime,
                    "When the resource was last modified.",
                )
            },
            AttrDef {
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..base("location", AttrType::Reference, "The URI of the resource.")
            },
            AttrDef {
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..string("version", "The version (ETag) of the resource.")
            },
        ],
        ..base("meta", AttrType::Complex, "Resource metadata.")
    },
];

/// A SCIM resource type: its endpoint, core schema and extensions.
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    pub extensions: &'static [&'static SchemaDef],
}

pub static USER_RESOURCE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER_SCHEMA,
    extensions: &[&ENTERPRISE_USER_SCHEMA],
};

pub static GROUP_RESOURCE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP_SCHEMA,
    extensions: &[],
};

/// Where a top-level name resolved: a common attribute, a core attribute, or an extension.
#[derive(Debug, Clone, Copy)]
pub enum Resolved {
    /// A common or core attribute: stored at the top level of the resource JSON.
    Core(&'static AttrDef),
    /// An attribute of an extension: stored under the extension URN key.
    Extension(&'static SchemaDef, &'static AttrDef),
    /// The extension object itself (a path naming just the URN).
    ExtensionObject(&'static SchemaDef),
}

impl ResourceType {
    /// Every schema URN this resource type knows (core first).
    pub fn schema_urns(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.schema.id).chain(self.extensions.iter().map(|s| s.id))
    }

    /// The extension with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves a top-level attribute name, without URN prefix, in the common and core schema.
    pub fn core_attr(&self, name: &str) -> Option<&'static AttrDef> {
        COMMON_ATTRIBUTES
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .or_else(|| self.schema.attr(name))
    }

    /// Splits a possibly URN-prefixed attribute name (`urn:…:User:userName`,
    /// `urn:…:enterprise:2.0:User:manager.value`, `name.givenName`) and resolves its first
    /// component. Returns the resolution and the rest after the attribute (a `.sub` suffix,
    /// without the dot), or `None` when the name is unknown.
    pub fn resolve<'a>(&self, full: &'a str) -> Option<(Resolved, Option<&'a str>)> {
        let (urn_schema, rest) = self.split_urn(full)?;
        match urn_schema {
            Some(schema) if !std::ptr::eq(schema, self.schema) => {
                if rest.is_empty() {
                    return Some((Resolved::ExtensionObject(schema), None));
                }
                let (name, sub) = split_sub(rest);
                schema
                    .attr(name)
                    .map(|a| (Resolved::Extension(schema, a), sub))
            }
            _ => {
                let (name, sub) = split_sub(rest);
                self.core_attr(name).map(|a| (Resolved::Core(a), sub))
            }
        }
    }

    /// Strips a known schema URN prefix. `Ok((None, name))` when there is no URN prefix;
    /// `None` when the name carries an unknown URN.
    fn split_urn<'a>(&self, full: &'a str) -> Option<(Option<&'static SchemaDef>, &'a str)> {
        if !full
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            return Some((None, full));
        }
        let schemas = std::iter::once(self.schema).chain(self.extensions.iter().copied());
        for schema in schemas {
            let id = schema.id;
            // `get`, not slicing: client text may put a multi-byte character at the cut.
            let (Some(head), Some(rest)) = (full.get(..id.len()), full.get(id.len()..)) else {
                continue;
            };
            if head.eq_ignore_ascii_case(id) {
                if rest.is_empty() {
                    return Some((Some(schema), ""));
                }
                if let Some(r) = rest.strip_prefix(':') {
                    return Some((Some(schema), r));
                }
            }
        }
        None
    }
}

fn split_sub(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (name, None),
    }
}

fn attr_json(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": match a.ty {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        },
        "multiValued": a.multi_valued,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        },
        "uniqueness": match a.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        },
    });
    if !a.sub_attributes.is_empty() {
        v["subAttributes"] = Value::Array(a.sub_attributes.iter().map(attr_json).collect());
    }
    if !a.canonical_values.is_empty() {
        v["canonicalValues"] = json!(a.canonical_values);
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    v
}

/// The `/Schemas/{id}` representation of a schema (RFC 7643 §7).
pub fn schema_json(schema: &SchemaDef, base_url: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base_url}/Schemas/{}", schema.id),
        },
    })
}

/// Every schema this server serves at `/Schemas`.
pub fn all_schemas() -> [&'static SchemaDef; 3] {
    [&USER_SCHEMA, &ENTERPRISE_USER_SCHEMA, &GROUP_SCHEMA]
}

/// The `/ResourceTypes/{name}` representation (RFC 7643 §6).
pub fn resource_type_json(rt: &ResourceType, base_url: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": rt.extensions.iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base_url}/ResourceTypes/{}", rt.name),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_extension_and_urn_prefixed_names() {
        let (r, sub) = USER_RESOURCE.resolve("UserName").unwrap();
        assert!(matches!(r, Resolved::Core(a) if a.name == "userName"));
        assert_eq!(sub, None);
        let (r, sub) = USER_RESOURCE.resolve("name.givenName").unwrap();
        assert!(matches!(r, Resolved::Core(a) if a.name == "name"));
        assert_eq!(sub, Some("givenName"));
        let (r, sub) = USER_RESOURCE
            .resolve("urn:ietf:params:scim:schemas:core:2.0:User:userName")
            .unwrap();
        assert!(matches!(r, Resolved::Core(a) if a.name == "userName"));
        assert_eq!(sub, None);
        let (r, sub) = USER_RESOURCE
            .resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .unwrap();
        assert!(
            matches!(r, Resolved::Extension(s, a) if s.id == ENTERPRISE_USER_URN && a.name == "manager")
        );
        assert_eq!(sub, Some("value"));
        assert!(USER_RESOURCE.resolve("urn:example:unknown:foo").is_none());
        assert!(USER_RESOURCE.resolve("nosuchattr").is_none());
        assert!(
            matches!(USER_RESOURCE.resolve("id").unwrap().0, Resolved::Core(a) if a.case_exact)
        );
    }

    #[test]
    fn multi_byte_character_at_the_urn_cut_is_not_a_panic() {
        // Found by fuzz/scim_filter: a URN-looking name whose byte at the length of a schema
        // id falls inside a character used to panic when sliced.
        let crash = "urn:ien\u{0}m\u{707}$}\u{707}\u{0}m\u{707}$m\u{707}:urn:ien\u{0}m\u{707}$}\u{707}\u{0}m\u{707}$m\u{707}:cm1Ne12cm1Ne12";
        for rt in [&USER_RESOURCE, &GROUP_RESOURCE] {
            assert!(rt.resolve(crash).is_none());
            assert!(rt
                .resolve("urn:ietf:params:scim:schemas:core:2.0:Use\u{e9}r")
                .is_none());
        }
        if let Ok(f) = super::super::filter::parse_filter(&format!("{crash} pr")) {
            let _ = super::super::filter::validate(&USER_RESOURCE, &f);
        }
    }
}
