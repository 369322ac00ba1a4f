"""MMLU's subject -> category mapping, as the MMLU authors group their 57 subjects.

Source: the `subcategories` / `categories` tables of hendrycks/test `categories.py` (the MMLU release).
Each subject has one subcategory; each subcategory belongs to one of four categories. The accuracy report
(benchmarks/accuracy.py) averages over questions (micro average), as hendrycks' `evaluate.py` does.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# The four category names as hendrycks prints them, except "other (business, health, misc.)" -> "other".
STEM, HUMANITIES, SOCIAL_SCIENCES, OTHER = "STEM", "humanities", "social sciences", "other"

SUBCATEGORY_CATEGORY: Mapping[str, str] = MappingProxyType({
    "physics": STEM, "chemistry": STEM, "biology": STEM, "computer science": STEM, "math": STEM,
    "engineering": STEM,
    "history": HUMANITIES, "philosophy": HUMANITIES, "law": HUMANITIES,
    "politics": SOCIAL_SCIENCES, "culture": SOCIAL_SCIENCES, "economics": SOCIAL_SCIENCES,
    "geography": SOCIAL_SCIENCES, "psychology": SOCIAL_SCIENCES,
    "other": OTHER, "business": OTHER, "health": OTHER,
})

SUBJECT_SUBCATEGORY: Mapping[str, str] = MappingProxyType({
    "abstract_algebra": "math",
    "anatomy": "health",
    "astronomy": "physics",
    "business_ethics": "business",
    "clinical_knowledge": "health",
    "college_biology": "biology",
    "college_chemistry": "chemistry",
    "college_computer_science": "computer science",
    "college_mathematics": "math",
    "college_medicine": "health",
    "college_physics": "physics",
    "computer_security": "computer science",
    "conceptual_physics": "physics",
    "econometrics": "economics",
    "electrical_engineering": "engineering",
    "elementary_mathematics": "math",
    "formal_logic": "philosophy",
    "global_facts": "other",
    "high_school_biology": "biology",
    "high_school_chemistry": "chemistry",
    "high_school_computer_science": "computer science",
    "high_school_european_history": "history",
    "high_school_geography": "geography",
    "high_school_government_and_politics": "politics",
    "high_school_macroeconomics": "economics",
    "high_school_mathematics": "math",
    "high_school_microeconomics": "economics",
    "high_school_physics": "physics",
    "high_school_psychology": "psychology",
    "high_school_statistics": "math",
    "high_school_us_history": "history",
    "high_school_world_history": "history",
    "human_aging": "health",
    "human_sexuality": "culture",
    "international_law": "law",
    "jurisprudence": "law",
    "logical_fallacies": "philosophy",
    "machine_learning": "computer science",
    "management": "business",
    "marketing": "business",
    "medical_genetics": "health",
    "miscellaneous": "other",
    "moral_disputes": "philosophy",
    "moral_scenarios": "philosophy",
    "nutrition": "health",
    "philosophy": "philosophy",
    "prehistory": "history",
    "professional_accounting": "other",
    "professional_law": "law",
    "professional_medicine": "health",
    "professional_psychology": "psychology",
    "public_relations": "politics",
    "security_studies": "politics",
    "sociology": "culture",
    "us_foreign_policy": "politics",
    "virology": "health",
    "world_religions": "philosophy",
})

# subject -> one of the four categories: what the case exposes as `CASE.categories`. Ordered by category
# (STEM, humanities, social sciences, other), then subject: reports list categories in this order.
SUBJECT_CATEGORY: Mapping[str, str] = MappingProxyType({
    subject: cat
    for cat in (STEM, HUMANITIES, SOCIAL_SCIENCES, OTHER)
    for subject, sub in sorted(SUBJECT_SUBCATEGORY.items()) if SUBCATEGORY_CATEGORY[sub] == cat
})
