"""Shared paths for the io tests (real data under <repo>/../shared/data)."""
from pathlib import Path

DATA = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()
CHEST = DATA / "tcia_cmb_crc_ct_chest"
TOTALSEG_DICOM = DATA / "totalseg" / "tests" / "reference_files" / "example_ct_dicom"
MONAI_CT = DATA / "monai_testing_data" / "tests" / "testing_data" / "CT_DICOM"
OBLIQUE = DATA / "dcm_qa_toshiba_oblique" / "In" / "Galan" / "10006_DTI_ALL_20d"
QA_TS = DATA / "dcm_qa_ts" / "In"
QA_12BIT = DATA / "dcm_qa_12bit" / "In"
QA_ENH = DATA / "dcm_qa_enh" / "In"


def chest_files() -> list:
    return sorted(CHEST.glob("*.dcm"))
