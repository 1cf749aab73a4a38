"""The course's one reference table: every method and claim from the literature the lessons cite, with its DOI or arXiv id.

Each lesson's "References" cell is rendered from here (`references_markdown`, written by `medkit.course.blocks`),
so a citation is typed once. `tests/test_references.py` checks that every inline author-year mention in a lesson
has an entry, that each lesson lists what it mentions, and that every identifier has a valid form (no network).
"""

from dataclasses import dataclass

from ..base.errors import UnknownNameError

__all__ = ["Reference", "REFERENCES", "LESSON_REFERENCES", "get_reference", "lesson_references", "references_markdown"]


@dataclass(frozen=True)
class Reference:
    """One publication: `cite` is how lessons mention it inline ("Chen et al. 2020"); `doi` or `arxiv` finds it."""

    cite: str
    authors: str
    year: int
    title: str
    venue: str
    doi: str | None = None
    arxiv: str | None = None

    @property
    def surname(self) -> str:
        """Return the first author's surname, as an inline mention starts."""
        return self.cite.split()[0]

    @property
    def link(self) -> str:
        """Return the resolvable address: the DOI's, else the arXiv abstract's."""
        return f"https://doi.org/{self.doi}" if self.doi else f"https://arxiv.org/abs/{self.arxiv}"

    def markdown(self) -> str:
        """Return the entry as one markdown list item."""
        ids = " · ".join(x for x in (self.doi and f"doi:{self.doi}", self.arxiv and f"arXiv:{self.arxiv}") if x)
        title = self.title if self.title.endswith(("?", "!")) else self.title + "."
        return f"- {self.authors} ({self.year}). {title} *{self.venue}*. [{ids}]({self.link})"


_R = Reference
REFERENCES: dict[str, Reference] = {
    # data sets
    "kermany2018": _R("Kermany et al. 2018", "Kermany D. S., Goldbaum M., Cai W., et al.", 2018,
                      "Identifying medical diagnoses and treatable diseases by image-based deep learning",
                      "Cell 172(5), 1122-1131", doi="10.1016/j.cell.2018.02.010"),
    "wang2017": _R("Wang et al. 2017", "Wang X., Peng Y., Lu L., Lu Z., Bagheri M., Summers R. M.", 2017,
                   "ChestX-ray8: hospital-scale chest X-ray database and benchmarks on weakly-supervised classification "
                   "and localization of common thorax diseases (ChestX-ray14; images provided by the NIH Clinical "
                   "Center, https://nihcc.app.box.com/v/ChestXray-NIHCC)", "CVPR 2017", doi="10.1109/CVPR.2017.369"),
    "yang2023": _R("Yang et al. 2023", "Yang J., Shi R., Wei D., et al.", 2023,
                   "MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D biomedical image classification",
                   "Scientific Data 10, 41", doi="10.1038/s41597-022-01721-8", arxiv="2110.14795"),
    "aldhabyani2020": _R("Al-Dhabyani et al. 2020", "Al-Dhabyani W., Gomaa M., Khaled H., Fahmy A.", 2020,
                         "Dataset of breast ultrasound images (BUSI)", "Data in Brief 28, 104863",
                         doi="10.1016/j.dib.2019.104863"),
    "tschandl2018": _R("Tschandl et al. 2018", "Tschandl P., Rosendahl C., Kittler H.", 2018,
                       "The HAM10000 dataset, a large collection of multi-source dermatoscopic images of common "
                       "pigmented skin lesions", "Scientific Data 5, 180161", doi="10.1038/sdata.2018.161"),
    "deng2009": _R("Deng et al. 2009", "Deng J., Dong W., Socher R., Li L.-J., Li K., Fei-Fei L.", 2009,
                   "ImageNet: a large-scale hierarchical image database", "CVPR 2009", doi="10.1109/CVPR.2009.5206848"),
    # backbones and transfer
    "krizhevsky2012": _R("Krizhevsky et al. 2012", "Krizhevsky A., Sutskever I., Hinton G. E.", 2012,
                         "ImageNet classification with deep convolutional neural networks (NeurIPS 2012; journal "
                         "version 2017)", "Communications of the ACM 60(6), 84-90", doi="10.1145/3065386"),
    "tan2019": _R("Tan and Le 2019", "Tan M., Le Q. V.", 2019,
                  "EfficientNet: rethinking model scaling for convolutional neural networks", "ICML 2019",
                  arxiv="1905.11946"),
    "yosinski2014": _R("Yosinski et al. 2014", "Yosinski J., Clune J., Bengio Y., Lipson H.", 2014,
                       "How transferable are features in deep neural networks?", "NeurIPS 2014", arxiv="1411.1792"),
    "raghu2019": _R("Raghu et al. 2019", "Raghu M., Zhang C., Kleinberg J., Bengio S.", 2019,
                    "Transfusion: understanding transfer learning for medical imaging", "NeurIPS 2019",
                    arxiv="1902.07208"),
    "he2019": _R("He et al. 2019", "He K., Girshick R., Dollár P.", 2019, "Rethinking ImageNet pre-training",
                 "ICCV 2019", doi="10.1109/ICCV.2019.00502", arxiv="1811.08883"),
    "tajbakhsh2016": _R("Tajbakhsh et al. 2016", "Tajbakhsh N., Shin J. Y., Gurudu S. R., et al.", 2016,
                        "Convolutional neural networks for medical image analysis: full training or fine tuning?",
                        "IEEE Transactions on Medical Imaging 35(5), 1299-1312", doi="10.1109/TMI.2016.2535302"),
    "howard2018": _R("Howard and Ruder 2018", "Howard J., Ruder S.", 2018,
                     "Universal language model fine-tuning for text classification (ULMFiT)", "ACL 2018",
                     doi="10.18653/v1/P18-1031", arxiv="1801.06146"),
    "howard2020": _R("Howard and Gugger 2020", "Howard J., Gugger S.", 2020,
                     "Fastai: a layered API for deep learning", "Information 11(2), 108", doi="10.3390/info11020108"),
    "lin2017": _R("Lin et al. 2017", "Lin T.-Y., Goyal P., Girshick R., He K., Dollár P.", 2017,
                  "Focal loss for dense object detection", "ICCV 2017", doi="10.1109/ICCV.2017.324",
                  arxiv="1708.02002"),
    # explanations
    "selvaraju2017": _R("Selvaraju et al. 2017", "Selvaraju R. R., Cogswell M., Das A., et al.", 2017,
                        "Grad-CAM: visual explanations from deep networks via gradient-based localization",
                        "ICCV 2017", doi="10.1109/ICCV.2017.74", arxiv="1610.02391"),
    "chattopadhay2018": _R("Chattopadhay et al. 2018", "Chattopadhay A., Sarkar A., Howlader P., Balasubramanian V. N.",
                           2018, "Grad-CAM++: generalized gradient-based visual explanations for deep convolutional "
                           "networks", "WACV 2018", doi="10.1109/WACV.2018.00097", arxiv="1710.11063"),
    "muhammad2020": _R("Muhammad and Yeasin 2020", "Muhammad M. B., Yeasin M.", 2020,
                       "Eigen-CAM: class activation map using principal components", "IJCNN 2020", arxiv="2008.00299"),
    "adebayo2018": _R("Adebayo et al. 2018", "Adebayo J., Gilmer J., Muelly M., Goodfellow I., Hardt M., Kim B.", 2018,
                      "Sanity checks for saliency maps", "NeurIPS 2018", arxiv="1810.03292"),
    "rong2022": _R("Rong et al. 2022", "Rong Y., Leemann T., Borisov V., Kasneci G., Kasneci E.", 2022,
                   "A consistent and efficient evaluation strategy for attribution methods (ROAD)", "ICML 2022",
                   arxiv="2202.00449"),
    "zhang2018": _R("Zhang et al. 2018", "Zhang J., Bargal S. A., Lin Z., Brandt J., Shen X., Sclaroff S.", 2018,
                    "Top-down neural attention by excitation backprop (the pointing game)",
                    "International Journal of Computer Vision 126, 1084-1102", doi="10.1007/s11263-017-1059-x",
                    arxiv="1608.00507"),
    "zech2018": _R("Zech et al. 2018", "Zech J. R., Badgeley M. A., Liu M., et al.", 2018,
                   "Variable generalization performance of a deep learning model to detect pneumonia in chest "
                   "radiographs: a cross-sectional study", "PLOS Medicine 15(11), e1002683",
                   doi="10.1371/journal.pmed.1002683"),
    "degrave2021": _R("DeGrave et al. 2021", "DeGrave A. J., Janizek J. D., Lee S.-I.", 2021,
                      "AI for radiographic COVID-19 detection selects shortcuts over signal",
                      "Nature Machine Intelligence 3, 610-619", doi="10.1038/s42256-021-00338-7"),
    # validation, calibration, fairness
    "guo2017": _R("Guo et al. 2017", "Guo C., Pleiss G., Sun Y., Weinberger K. Q.", 2017,
                  "On calibration of modern neural networks", "ICML 2017", arxiv="1706.04599"),
    "hardt2016": _R("Hardt et al. 2016", "Hardt M., Price E., Srebro N.", 2016,
                    "Equality of opportunity in supervised learning (equalized odds)", "NeurIPS 2016",
                    arxiv="1610.02413"),
    "seyyedkalantari2021": _R("Seyyed-Kalantari et al. 2021", "Seyyed-Kalantari L., Zhang H., McDermott M. B. A., "
                              "Chen I. Y., Ghassemi M.", 2021, "Underdiagnosis bias of artificial intelligence "
                              "algorithms applied to chest radiographs in under-served patient populations",
                              "Nature Medicine 27, 2176-2182", doi="10.1038/s41591-021-01595-0"),
    "varoquaux2022": _R("Varoquaux and Cheplygina 2022", "Varoquaux G., Cheplygina V.", 2022,
                        "Machine learning for medical imaging: methodological failures and recommendations for the "
                        "future", "npj Digital Medicine 5, 48", doi="10.1038/s41746-022-00592-y"),
    "oakdenrayner2020": _R("Oakden-Rayner et al. 2020", "Oakden-Rayner L., Dunnmon J., Carneiro G., Ré C.", 2020,
                           "Hidden stratification causes clinically meaningful failures in machine learning for "
                           "medical imaging", "ACM CHIL 2020", doi="10.1145/3368555.3384468"),
    "saerens2002": _R("Saerens et al. 2002", "Saerens M., Latinne P., Decaestecker C.", 2002,
                      "Adjusting the outputs of a classifier to new a priori probabilities: a simple procedure",
                      "Neural Computation 14(1), 21-41", doi="10.1162/089976602753284446"),
    # deployment
    "mitchell2019": _R("Mitchell et al. 2019", "Mitchell M., Wu S., Zaldivar A., et al.", 2019,
                       "Model cards for model reporting", "FAT* 2019", doi="10.1145/3287560.3287596",
                       arxiv="1810.03993"),
    "rabanser2019": _R("Rabanser et al. 2019", "Rabanser S., Günnemann S., Lipton Z. C.", 2019,
                       "Failing loudly: an empirical study of methods for detecting dataset shift", "NeurIPS 2019",
                       arxiv="1810.11953"),
    # segmentation
    "ronneberger2015": _R("Ronneberger et al. 2015", "Ronneberger O., Fischer P., Brox T.", 2015,
                          "U-Net: convolutional networks for biomedical image segmentation", "MICCAI 2015",
                          doi="10.1007/978-3-319-24574-4_28", arxiv="1505.04597"),
    "milletari2016": _R("Milletari et al. 2016", "Milletari F., Navab N., Ahmadi S.-A.", 2016,
                        "V-Net: fully convolutional neural networks for volumetric medical image segmentation "
                        "(the Dice loss)", "3DV 2016", doi="10.1109/3DV.2016.79", arxiv="1606.04797"),
    "isensee2021": _R("Isensee et al. 2021", "Isensee F., Jaeger P. F., Kohl S. A. A., Petersen J., Maier-Hein K. H.",
                      2021, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation",
                      "Nature Methods 18, 203-211", doi="10.1038/s41592-020-01008-z"),
    "maierhein2024": _R("Maier-Hein et al. 2024", "Maier-Hein L., Reinke A., Godau P., et al.", 2024,
                        "Metrics reloaded: recommendations for image analysis validation", "Nature Methods 21, 195-212",
                        doi="10.1038/s41592-023-02151-z", arxiv="2206.01653"),
    "taha2015": _R("Taha and Hanbury 2015", "Taha A. A., Hanbury A.", 2015,
                   "Metrics for evaluating 3D medical image segmentation: analysis, selection, and tool",
                   "BMC Medical Imaging 15, 29", doi="10.1186/s12880-015-0068-x"),
    # self-supervised, transformers
    "chen2020": _R("Chen et al. 2020", "Chen T., Kornblith S., Norouzi M., Hinton G.", 2020,
                   "A simple framework for contrastive learning of visual representations (SimCLR)", "ICML 2020",
                   arxiv="2002.05709"),
    "dosovitskiy2021": _R("Dosovitskiy et al. 2021", "Dosovitskiy A., Beyer L., Kolesnikov A., et al.", 2021,
                          "An image is worth 16x16 words: transformers for image recognition at scale (ViT)",
                          "ICLR 2021", arxiv="2010.11929"),
    "azizi2021": _R("Azizi et al. 2021", "Azizi S., Mustafa B., Ryan F., et al.", 2021,
                    "Big self-supervised models advance medical image classification", "ICCV 2021",
                    arxiv="2101.05224"),
    # federated learning and privacy
    "mcmahan2017": _R("McMahan et al. 2017", "McMahan H. B., Moore E., Ramage D., Hampson S., Agüera y Arcas B.", 2017,
                      "Communication-efficient learning of deep networks from decentralized data (FedAvg)",
                      "AISTATS 2017", arxiv="1602.05629"),
    "bonawitz2017": _R("Bonawitz et al. 2017", "Bonawitz K., Ivanov V., Kreuter B., et al.", 2017,
                       "Practical secure aggregation for privacy-preserving machine learning (SecAgg)", "ACM CCS 2017",
                       doi="10.1145/3133956.3133982"),
    "abadi2016": _R("Abadi et al. 2016", "Abadi M., Chu A., Goodfellow I., et al.", 2016,
                    "Deep learning with differential privacy (DP-SGD)", "ACM CCS 2016", doi="10.1145/2976749.2978318",
                    arxiv="1607.00133"),
    "phong2017": _R("Phong et al. 2017", "Phong L. T., Aono Y., Hayashi T., Wang L., Moriai S.", 2017,
                    "Privacy-preserving deep learning via additively homomorphic encryption (online 2017, "
                    "issue 13(5) 2018)", "IEEE Transactions on Information Forensics and Security",
                    doi="10.1109/TIFS.2017.2787987"),
    "zhu2019": _R("Zhu et al. 2019", "Zhu L., Liu Z., Han S.", 2019, "Deep leakage from gradients", "NeurIPS 2019",
                  arxiv="1906.08935"),
    "rieke2020": _R("Rieke et al. 2020", "Rieke N., Hancox J., Li W., et al.", 2020,
                    "The future of digital health with federated learning", "npj Digital Medicine 3, 119",
                    doi="10.1038/s41746-020-00323-1"),
    "li2021": _R("Li et al. 2021", "Li X., Jiang M., Zhang X., Kamp M., Dou Q.", 2021,
                 "FedBN: federated learning on non-IID features via local batch normalization", "ICLR 2021",
                 arxiv="2102.07623"),
    # volumes
    "carreira2017": _R("Carreira and Zisserman 2017", "Carreira J., Zisserman A.", 2017,
                       "Quo vadis, action recognition? A new model and the Kinetics dataset (I3D)", "CVPR 2017",
                       doi="10.1109/CVPR.2017.502", arxiv="1705.07750"),
    "chen2019": _R("Chen et al. 2019", "Chen S., Ma K., Zheng Y.", 2019,
                   "Med3D: transfer learning for 3D medical image analysis", "arXiv preprint", arxiv="1904.00625"),
    "nyul2000": _R("Nyúl et al. 2000", "Nyúl L. G., Udupa J. K., Zhang X.", 2000,
                   "New variants of a method of MRI scale standardization", "IEEE Transactions on Medical Imaging "
                   "19(2), 143-150", doi="10.1109/42.836373"),
    # a second site
    "li2016": _R("Li et al. 2016", "Li Y., Wang N., Shi J., Hou X., Liu J.", 2016,
                 "Revisiting batch normalization for practical domain adaptation (AdaBN; journal version: Pattern "
                 "Recognition 80, 2018)", "arXiv preprint", doi="10.1016/j.patcog.2018.03.005", arxiv="1603.04779"),
    "zuiderveld1994": _R("Zuiderveld 1994", "Zuiderveld K.", 1994, "Contrast limited adaptive histogram equalization "
                         "(CLAHE)", "Graphics Gems IV, 474-485", doi="10.1016/B978-0-12-336156-1.50061-6"),
}

# Which entries each lesson lists: everything it mentions inline, plus the methods it uses by name.
LESSON_REFERENCES: dict[str, tuple[str, ...]] = {
    "00": ("kermany2018", "yang2023", "deng2009", "tan2019", "yosinski2014", "raghu2019"),
    "01": ("kermany2018", "yang2023", "nyul2000", "varoquaux2022"),
    "02": ("krizhevsky2012", "deng2009", "tan2019", "yosinski2014", "raghu2019", "he2019", "kermany2018"),
    "03": ("howard2018", "howard2020", "lin2017", "yosinski2014", "raghu2019", "tajbakhsh2016", "kermany2018"),
    "04": ("selvaraju2017", "chattopadhay2018", "muhammad2020", "adebayo2018", "rong2022", "zhang2018",
           "zech2018", "degrave2021", "kermany2018"),
    "05": ("guo2017", "hardt2016", "wang2017", "seyyedkalantari2021", "varoquaux2022", "oakdenrayner2020",
           "zech2018", "yang2023"),
    "06": ("mitchell2019", "rabanser2019", "zech2018"),
    "07": ("ronneberger2015", "milletari2016", "isensee2021", "maierhein2024", "taha2015", "kermany2018"),
    "08": ("chen2020", "dosovitskiy2021", "azizi2021", "raghu2019", "he2019", "kermany2018"),
    "09": ("mcmahan2017", "bonawitz2017", "abadi2016", "phong2017", "zhu2019", "rieke2020", "li2021", "kermany2018"),
    "10": ("aldhabyani2020", "tschandl2018", "yang2023", "raghu2019", "yosinski2014", "he2019"),
    "11": ("carreira2017", "chen2019", "nyul2000", "yang2023"),
    "12": ("kermany2018", "zech2018", "li2016", "saerens2002", "guo2017", "zuiderveld1994"),
}


def get_reference(key: str) -> Reference:
    """Return the entry named `key`, or raise UnknownNameError listing the keys."""
    if key not in REFERENCES:
        raise UnknownNameError(f"No reference {key!r}; the table has {', '.join(sorted(REFERENCES))}. "
                               "Add it to medkit/course/references.py with its DOI or arXiv id.")
    return REFERENCES[key]


def lesson_references(lesson: str) -> list[Reference]:
    """Return the entries lesson `lesson` ("03") lists, by first author then year."""
    if lesson not in LESSON_REFERENCES:
        raise UnknownNameError(f"No reference list for lesson {lesson!r}; lessons are {', '.join(LESSON_REFERENCES)}.")
    return sorted((get_reference(k) for k in LESSON_REFERENCES[lesson]), key=lambda r: (r.surname.lower(), r.year))


def references_markdown(lesson: str) -> str:
    """Return lesson `lesson`'s reference list as markdown list items."""
    return "\n".join(ref.markdown() for ref in lesson_references(lesson))
