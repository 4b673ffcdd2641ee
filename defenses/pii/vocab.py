"""What column headers and whole cell values say about personal data: the word lists, as data.

A header is read as its lower-case words (``DateOfBirth``, ``date_of_birth`` and
``date-of-birth`` all read as ``date of birth``) and, joined, as one word (``dateofbirth``),
so both spellings match. A header hint decides what a column holds when its values alone
cannot: a person's name, a date of birth, a bare 9-digit number that is a social security
number, and every GDPR Art. 9 special category.

Value vocabularies are matched against a whole cell (lower case, spaces collapsed), never
against words inside free text: "Muslim" in a ``group`` column counts, "a Muslim-owned
bakery" in a review does not. The lists hold only terms that name a special category
unambiguously ("white", "conservative" or "straight" alone do not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, slots=True)
class Header:
    """A column name as words, and as those words joined."""

    words: tuple[str, ...]
    joined: str

    def has(self, *names: str) -> bool:
        """Whether any of ``names`` is one of the words, or all of them joined."""
        return any(n in self.words or n == self.joined for n in names)

    def has_all(self, *names: str) -> bool:
        return all(n in self.words for n in names) or "".join(names) == self.joined


def header(name: str) -> Header:
    words = tuple(w for w in _SPLIT.split(_CAMEL.sub(" ", name).casefold()) if w)
    return Header(words, "".join(words))


# -- direct identifiers by header ---------------------------------------------------------------

NAME_WORDS = frozenset({
    "name", "names", "fullname", "firstname", "lastname", "surname", "surnames", "forename",
    "forenames", "givenname", "familyname", "middlename", "maidenname", "fname", "lname",
    "vorname", "nachname", "prenom", "nom", "nombre", "apellido", "apellidos", "cognome",
    "displayname", "patientname", "customername", "contactname", "employeename", "nickname",
})
NAME_NOT = frozenset({
    "file", "filename", "user", "username", "login", "host", "hostname", "domain", "product", "company",
    "org", "organisation", "organization", "business", "brand", "model", "class", "feature", "column",
    "field", "table", "street", "city", "town", "country", "state", "region", "place", "item",
    "category", "app", "device", "server", "species", "drug", "test", "dataset", "project", "team",
    "event", "label", "key", "store", "shop", "school", "hospital", "bank", "merchant", "vendor",
    "account", "path", "service", "package", "variable", "length", "count", "len",
    "car", "vehicle", "make", "ship", "boat", "aircraft", "airline", "airport", "station", "stop", "route",
    "track", "song", "album", "playlist", "movie", "film", "show", "series", "episode", "book", "title",
    "game", "league", "club", "pet", "dog", "cat", "animal", "horse", "breed", "plant", "gene", "protein",
    "compound", "chemical", "molecule", "ingredient", "recipe", "dish", "food", "restaurant", "hotel",
    "venue", "location", "site", "area", "district", "county", "province", "neighbourhood", "neighborhood",
    "building", "room", "course", "program", "programme", "department", "dept", "unit", "division",
    "sector", "industry", "fund", "stock", "ticker", "asset", "currency", "coin", "font", "color", "colour",
    "tag", "topic", "channel", "node", "cluster", "pod", "container", "image", "bucket", "repo", "branch",
    "job", "task", "metric", "attribute", "param", "parameter", "setting", "option", "config", "function",
    "method", "module", "sheet", "tab", "folder", "directory", "dir", "pokemon", "character", "role",
    "plan", "campaign", "source", "queue", "workflow", "pipeline", "experiment", "algorithm", "layer",
    "sku", "type", "group", "brandname", "productname", "itemname",
})
NAME_ALONE = frozenset({"name", "names", "nom", "nombre", "nome"})
"""Headers that say "name" without saying whose: confirmed by the column's values (:mod:`.names`)."""
NAME_STRONG = NAME_WORDS - NAME_ALONE
NAME_QUALIFIERS = frozenset({"first", "last", "given", "family", "middle", "maiden", "full", "legal", "sur",
                             "fore", "christian", "nick", "birth"})
PERSON_WORDS = frozenset({
    "person", "persons", "people", "customer", "customers", "client", "clients", "patient", "patients",
    "employee", "employees", "staff", "contact", "contacts", "member", "members", "student", "students",
    "pupil", "teacher", "owner", "holder", "cardholder", "accountholder", "policyholder", "applicant",
    "passenger", "guest", "author", "recipient", "sender", "addressee", "driver", "buyer", "seller",
    "tenant", "landlord", "beneficiary", "signatory", "signer", "parent", "mother", "father", "spouse",
    "child", "doctor", "physician", "nurse", "witness", "victim", "suspect", "respondent", "participant",
    "subscriber", "insured", "claimant", "debtor", "guarantor", "kunde", "cliente",
})
"""Words for a person: with "name" (``customer_name``) a header says it holds people's names;
alone (``customer``) it may hold a name or a company's, and the column's values decide."""

DOB_WORDS = frozenset({
    "dob", "birthdate", "dateofbirth", "birthday", "birthdt", "geburtsdatum", "datenaissance",
    "fechanacimiento", "datadinascita",
})
PHONE_WORDS = frozenset({
    "phone", "phones", "telephone", "tel", "mobile", "cellphone", "fax", "msisdn", "phonenumber",
    "mobilephone", "telefon", "telefono", "telephoneno",
})
CARD_WORDS = frozenset({"creditcard", "cardnumber", "ccnumber", "ccnum", "pan", "debitcard", "cardno", "card",
                        "cards", "cc", "ccn", "creditcards"})
NOT_CARD_WORDS = frozenset({
    "imei", "iccid", "imsi", "ean", "upc", "gtin", "isbn", "barcode", "serial", "sku", "tracking", "product",
    "item", "order", "invoice", "shipment", "parcel", "gift", "loyalty", "voucher", "coupon",
})
"""Headers of numbers with a Luhn digit or an issuer-like prefix that are not payment cards: under
them bare digits are not confirmed as cards (a card written as cards print it still is)."""
IBAN_WORDS = frozenset({"iban", "bankaccount", "accountnumber"})
IP_WORDS = frozenset({"ip", "ipaddress", "ipv4", "ipv6", "ipaddr", "remoteaddr", "clientip"})
NOT_IP_WORDS = frozenset({"version", "ver", "release", "build"})

ID_SCHEMES_BY_WORD: dict[str, tuple[str, ...]] = {
    "ssn": ("us_ssn",), "socialsecurity": ("us_ssn",), "socialsecuritynumber": ("us_ssn",),
    "bsn": ("nl_bsn",), "burgerservicenummer": ("nl_bsn",),
    "idnr": ("de_idnr",), "steuerid": ("de_idnr",), "steueridentifikationsnummer": ("de_idnr",),
    "pesel": ("pl_pesel",),
    "nir": ("fr_nir",), "insee": ("fr_nir",),
    "nino": ("gb_nino",), "nationalinsurance": ("gb_nino",), "nationalinsurancenumber": ("gb_nino",),
    "sin": ("ca_sin",), "socialinsurance": ("ca_sin",), "socialinsurancenumber": ("ca_sin",),
    "aadhaar": ("in_aadhaar",), "aadhar": ("in_aadhaar",),
    "cpf": ("br_cpf",),
    "dni": ("es_dni", "es_nie"), "nie": ("es_nie",), "nif": ("es_dni", "es_nie"),
    "personnummer": ("se_personnummer",),
    "hetu": ("fi_hetu",), "henkilotunnus": ("fi_hetu",),
    "fodselsnummer": ("no_fodselsnummer",), "fnr": ("no_fodselsnummer",),
    "cpr": ("dk_cpr",), "cprnummer": ("dk_cpr",),
    "rijksregisternummer": ("be_nn",),
    "codicefiscale": ("it_codicefiscale",),
}
GENERIC_ID_WORDS = frozenset({
    "nationalid", "nationalidentifier", "nationalidnumber", "idnumber", "identitynumber",
    "identificationnumber", "personalnumber", "personalid", "personalidentitycode", "taxid",
    "taxnumber", "tin", "personalidentificationnumber",
})



def name_header(h: Header) -> str | None:
    """``strong`` when a header says a column holds people's names (``full_name``,
    ``customer_name``, ``surname``), ``weak`` when it may (``name``, ``customer``), else None."""
    if h.has(*NAME_NOT):
        return None
    if h.has(*NAME_STRONG):
        return "strong"
    if h.has(*NAME_ALONE):
        return "strong" if h.has(*NAME_QUALIFIERS) or h.has(*PERSON_WORDS) else "weak"
    if h.words and (h.joined in PERSON_WORDS or all(w in PERSON_WORDS for w in h.words)):
        return "weak"
    return None


# -- quasi-identifiers by header ----------------------------------------------------------------

QI_AGE = frozenset({"age", "ages", "agegroup", "ageband", "edad"})
NOT_AGE_WORDS = frozenset({
    "house", "housing", "home", "building", "property", "car", "vehicle", "account", "tree", "asset", "item",
    "product", "device", "battery", "equipment", "machine", "cache", "file", "record", "message", "post",
    "page", "content", "session", "token", "key", "loan", "policy", "contract", "ticket", "order",
    "listing", "stock", "inventory", "wine", "cheese", "bond", "mortgage", "crop", "firm", "company",
    "business", "store", "roof", "structure", "engine", "tire", "tyre", "link", "cookie", "password",
    "snapshot", "backup", "log", "model", "data", "dataset", "plant", "star", "galaxy", "rock", "fossil",
})
"""Whose age a header may name that is no person's: ``HouseAge``, ``account_age``, ``tree_age``."""
QI_BIRTH_YEAR = frozenset({"yob", "birthyear", "yearofbirth"})
QI_POSTCODE = frozenset({"zip", "zipcode", "postcode", "postcodes", "postal", "postalcode", "plz",
                         "postleitzahl", "codepostal", "zip5", "zip3"})
QI_SEX = frozenset({"sex", "gender", "geschlecht", "sexe", "sexo"})

GENDER_VALUES = frozenset({
    "m", "f", "male", "female", "man", "woman", "men", "women", "boy", "girl", "other", "x",
    "non-binary", "nonbinary", "non binary", "diverse", "divers", "unknown", "u", "intersex",
    "transgender", "trans", "prefer not to say", "w", "d",
})
UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$", re.IGNORECASE)
US_ZIP4 = re.compile(r"^\d{5}-\d{4}$")

# -- GDPR Art. 9 special categories -------------------------------------------------------------

SPECIAL_CATEGORIES = ("health", "ethnicity", "religion", "political_opinion", "trade_union",
                      "sexual_orientation", "genetic", "biometric")
"""Art. 9(1): racial or ethnic origin, political opinions, religious or philosophical beliefs,
trade union membership, genetic data, biometric data for identification, data concerning
health, and data concerning a person's sex life or sexual orientation."""

_HEALTH_WORDS = frozenset({
    "diagnosis", "diagnoses", "disease", "diseases", "illness", "illnesses", "medical", "medication",
    "medications", "prescription", "prescriptions", "health", "icd", "icd9", "icd10", "icd11",
    "symptom", "symptoms", "disability", "disabilities", "hiv", "allergy", "allergies", "pregnancy",
    "pregnant", "comorbidity", "comorbidities", "diagnose", "krankheit", "mentalhealth",
    "bloodtype", "bloodgroup", "vaccination", "vaccinated", "covid", "hivstatus",
})
_ETHNIC_WORDS = frozenset({"ethnicity", "ethnic", "ethnicgroup", "race", "racial", "ethnie", "ancestry"})
_RELIGION_WORDS = frozenset({"religion", "religious", "faith", "denomination", "religionorbelief",
                             "konfession"})
_POLITICAL_WORDS = frozenset({"political", "politics", "politicalparty", "partyaffiliation",
                              "politicalaffiliation", "politicalopinion", "votingintention", "voted"})
_UNION_WORDS = frozenset({"tradeunion", "unionmember", "unionmembership", "unionized", "unionised",
                          "gewerkschaft", "syndicat"})
_SEXUAL_WORDS = frozenset({"sexual", "sexuality", "sexualorientation", "lgbt", "lgbtq", "lgbtqia",
                           "sexlife"})
_GENETIC_WORDS = frozenset({"genetic", "genetics", "genotype", "genotypes", "genome", "genomic", "dna",
                            "snp", "snps", "allele", "alleles", "brca", "brca1", "brca2", "haplotype"})
_BIOMETRIC_WORDS = frozenset({"biometric", "biometrics", "fingerprint", "fingerprints", "faceprint",
                              "faceembedding", "facetemplate", "faceencoding", "iris", "irisscan",
                              "retina", "retinal", "voiceprint", "palmprint", "facialrecognition"})

SPECIAL_HEADER_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("health", _HEALTH_WORDS), ("ethnicity", _ETHNIC_WORDS), ("religion", _RELIGION_WORDS),
    ("political_opinion", _POLITICAL_WORDS), ("trade_union", _UNION_WORDS),
    ("sexual_orientation", _SEXUAL_WORDS), ("genetic", _GENETIC_WORDS), ("biometric", _BIOMETRIC_WORDS),
)


NOT_SPECIAL_VALUE_WORDS = frozenset({
    "zodiac", "starsign", "sign", "horoscope", "astrology", "constellation", "breed", "species", "weather",
    "storm", "cyclone", "genre", "horse", "dog", "cat", "pet",
})
"""Headers under which a whole-cell value that would name a special category means something
else: "Cancer" as a star sign, "Arab" as a horse breed, "Depression" as a weather system."""


def special_category_of(h: Header) -> str | None:
    """The Art. 9 category a header names, if any."""
    for category, words in SPECIAL_HEADER_WORDS:
        if h.has(*words):
            return category
    if h.has_all("union", "member") or h.has_all("trade", "union"):
        return "trade_union"
    if h.has_all("sexual", "orientation") or h.has_all("sex", "life"):
        return "sexual_orientation"
    if h.has_all("face", "embedding") or h.has_all("face", "template"):
        return "biometric"
    return None


_VALUES: dict[str, tuple[str, ...]] = {
    "religion": (
        "christian", "christianity", "catholic", "roman catholic", "protestant", "anglican",
        "church of england", "evangelical", "baptist", "methodist", "lutheran", "presbyterian",
        "pentecostal", "mormon", "latter-day saint", "jehovah's witness", "eastern orthodox",
        "greek orthodox", "russian orthodox", "muslim", "islam", "islamic", "sunni", "shia", "shiite",
        "jewish", "judaism", "hindu", "hinduism", "buddhist", "buddhism", "sikh", "sikhism", "jain",
        "jainism", "taoist", "shinto", "zoroastrian", "bahai", "baha'i", "atheist", "agnostic",
        "humanist", "pagan", "wiccan", "rastafarian", "unitarian", "quaker",
    ),
    "ethnicity": (
        "hispanic", "latino", "latina", "latinx", "hispanic or latino", "not hispanic or latino",
        "caucasian", "african american", "black or african american", "asian american",
        "white british", "white irish", "white other", "black british", "black african",
        "black caribbean", "british asian", "native american", "american indian",
        "american indian or alaska native", "alaska native", "pacific islander",
        "native hawaiian", "native hawaiian or other pacific islander", "aboriginal",
        "torres strait islander", "first nations", "mixed race", "mixed ethnicity", "romani",
        "arab", "kurdish", "han chinese",
    ),
    "sexual_orientation": (
        "heterosexual", "homosexual", "gay", "lesbian", "bisexual", "pansexual", "asexual", "queer",
        "gay or lesbian", "lgbt", "lgbtq",
    ),
    "political_opinion": (
        "democrat", "democratic party", "republican", "republican party", "labour party",
        "conservative party", "tory", "liberal democrats", "green party", "social democrat",
        "social democratic party", "communist", "communist party", "socialist party",
        "libertarian party", "far right", "far left",
    ),
    "trade_union": (
        "union member", "trade union member", "unionized", "unionised", "teamsters", "afl-cio",
        "unison", "unite the union", "gmb union",
    ),
    "health": (
        "hiv positive", "hiv+", "hiv-positive", "diabetes", "type 1 diabetes", "type 2 diabetes",
        "asthma", "cancer", "breast cancer", "lung cancer", "leukemia", "leukaemia", "depression",
        "major depressive disorder", "anxiety disorder", "schizophrenia", "bipolar disorder",
        "epilepsy", "hepatitis", "hepatitis b", "hepatitis c", "tuberculosis", "dementia",
        "alzheimer's", "alzheimer's disease", "parkinson's", "parkinson's disease", "autism",
        "multiple sclerosis", "hypertension", "copd", "chronic kidney disease", "ptsd", "adhd",
        "anorexia", "bulimia", "obesity", "crohn's disease", "heart disease", "covid-19",
        "long covid", "pregnant", "infertility", "dyslexia",
    ),
    "genetic": (
        "brca1 positive", "brca2 positive", "brca1 mutation", "brca2 mutation", "apoe4 carrier",
        "apoe e4 carrier", "carrier", "huntington's carrier",
    ),
}
SPECIAL_VALUES: dict[str, str] = {v: cat for cat, values in _VALUES.items() for v in values}
SPECIAL_VALUES.pop("carrier")  # a word too common alone to name genetic data

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?", "nil", "#n/a", "undefined"})
"""Cells read as no value at all: never counted as personal data, even under a telling header."""

NOT_A_NAME = frozenset({"unknown", "anonymous", "redacted", "withheld", "test", "tbd", "other",
                        "not provided", "not given", "not known", "n a", "x", "xx", "xxx"})


def normal(value: str) -> str:
    """A cell as the vocabularies compare it: lower case, spaces collapsed, ends trimmed."""
    return " ".join(value.casefold().split())
