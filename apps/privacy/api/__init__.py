"""REST API of the privacy app: requests and their steps (`requests`), the data map
(`datamap`), subjects' restrictions and connector callbacks (`subjects`)."""

from apps.privacy.api.datamap import Connectors, Databases, DataMap, Tables
from apps.privacy.api.requests import (
    ConsentExport,
    Consents,
    ProcessingActivities,
    RequestDetail,
    RequestExtend,
    RequestPackage,
    RequestPreview,
    Requests,
    RequestTransition,
    RequestVerification,
)
from apps.privacy.api.subjects import ConnectorCallback, LiftRestriction, SubjectRestrictions

__all__ = [
    "ConnectorCallback",
    "Connectors",
    "ConsentExport",
    "Consents",
    "DataMap",
    "Databases",
    "LiftRestriction",
    "ProcessingActivities",
    "RequestDetail",
    "RequestExtend",
    "RequestPackage",
    "RequestPreview",
    "RequestTransition",
    "RequestVerification",
    "Requests",
    "SubjectRestrictions",
    "Tables",
]
