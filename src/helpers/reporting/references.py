"""The works a run's methods section can cite, each as (author-year text, BibTeX entry), and the
reference list a Markdown reader gets from those entries.

Kept as data beside the writer (helpers.reporting.methods), so a new data set, architecture or
technique is one entry here; the writer cites a key only where the run used what it names. The
list under methods.md is formatted from the same BibTeX that references.bib holds, so the two
cannot disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

REFERENCES: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------------------------ data sets
    "goodfellow2013challenges": (
        "Goodfellow et al., 2013",
        """@inproceedings{goodfellow2013challenges,
  author = {Goodfellow, Ian J. and Erhan, Dumitru and Carrier, Pierre Luc and Courville, Aaron
    and Mirza, Mehdi and Hamner, Ben and Cukierski, Will and Tang, Yichuan and Thaler, David
    and Lee, Dong-Hyun and Zhou, Yingbo and Ramaiah, Chetan and Feng, Fangxiang and Li, Ruifan
    and Wang, Xiaojie and Athanasakis, Dimitris and Shawe-Taylor, John and Milakov, Maxim and
    Park, John and Ionescu, Radu and Popescu, Marius and Grozea, Cristian and Bergstra, James
    and Xie, Jingjing and Romaszko, Lukasz and Xu, Bing and Chuang, Zhang and Bengio, Yoshua},
  title = {Challenges in Representation Learning: A Report on Three Machine Learning Contests},
  booktitle = {Neural Information Processing (ICONIP 2013)},
  series = {Lecture Notes in Computer Science},
  volume = {8228},
  pages = {117--124},
  publisher = {Springer},
  year = {2013},
  doi = {10.1007/978-3-642-42051-1_16}
}""",
    ),
    "barsoum2016training": (
        "Barsoum et al., 2016",
        """@inproceedings{barsoum2016training,
  author = {Barsoum, Emad and Zhang, Cha and Canton Ferrer, Cristian and Zhang, Zhengyou},
  title = {Training Deep Networks for Facial Expression Recognition with Crowd-Sourced Label
    Distribution},
  booktitle = {Proceedings of the 18th ACM International Conference on Multimodal Interaction
    (ICMI)},
  pages = {279--283},
  year = {2016},
  doi = {10.1145/2993148.2993165}
}""",
    ),
    "mollahosseini2019affectnet": (
        "Mollahosseini et al., 2019",
        """@article{mollahosseini2019affectnet,
  author = {Mollahosseini, Ali and Hasani, Behzad and Mahoor, Mohammad H.},
  title = {{AffectNet}: A Database for Facial Expression, Valence, and Arousal Computing in the
    Wild},
  journal = {IEEE Transactions on Affective Computing},
  volume = {10},
  number = {1},
  pages = {18--31},
  year = {2019},
  doi = {10.1109/TAFFC.2017.2740923}
}""",
    ),
    "lyons1998coding": (
        "Lyons et al., 1998",
        """@inproceedings{lyons1998coding,
  author = {Lyons, Michael and Akamatsu, Shigeru and Kamachi, Miyuki and Gyoba, Jiro},
  title = {Coding Facial Expressions with {Gabor} Wavelets},
  booktitle = {Proceedings of the Third IEEE International Conference on Automatic Face and
    Gesture Recognition},
  pages = {200--205},
  year = {1998},
  doi = {10.1109/AFGR.1998.670949}
}""",
    ),
    "lucey2010extended": (
        "Lucey et al., 2010",
        """@inproceedings{lucey2010extended,
  author = {Lucey, Patrick and Cohn, Jeffrey F. and Kanade, Takeo and Saragih, Jason and
    Ambadar, Zara and Matthews, Iain},
  title = {The Extended {Cohn-Kanade} Dataset ({CK+}): A Complete Dataset for Action Unit and
    Emotion-Specified Expression},
  booktitle = {IEEE Computer Society Conference on Computer Vision and Pattern Recognition
    Workshops},
  pages = {94--101},
  year = {2010},
  doi = {10.1109/CVPRW.2010.5543262}
}""",
    ),
    "li2017reliable": (
        "Li et al., 2017",
        """@inproceedings{li2017reliable,
  author = {Li, Shan and Deng, Weihong and Du, JunPing},
  title = {Reliable Crowdsourcing and Deep Locality-Preserving Learning for Expression
    Recognition in the Wild},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition},
  pages = {2852--2861},
  year = {2017},
  doi = {10.1109/CVPR.2017.277}
}""",
    ),
    "zhang2018expw": (
        "Zhang et al., 2018",
        """@article{zhang2018expw,
  author = {Zhang, Zhanpeng and Luo, Ping and Loy, Chen Change and Tang, Xiaoou},
  title = {From Facial Expression Recognition to Interpersonal Relation Prediction},
  journal = {International Journal of Computer Vision},
  volume = {126},
  number = {5},
  pages = {550--569},
  year = {2018},
  doi = {10.1007/s11263-017-1055-1}
}""",
    ),
    "viola2001rapid": (
        "Viola & Jones, 2001",
        """@inproceedings{viola2001rapid,
  author = {Viola, Paul and Jones, Michael},
  title = {Rapid Object Detection Using a Boosted Cascade of Simple Features},
  booktitle = {Proceedings of the IEEE Computer Society Conference on Computer Vision and Pattern
    Recognition (CVPR)},
  volume = {1},
  pages = {511--518},
  year = {2001},
  doi = {10.1109/CVPR.2001.990517}
}""",
    ),
    # -------------------------------------------------------------------------- architectures
    "simonyan2015very": (
        "Simonyan & Zisserman, 2015",
        """@inproceedings{simonyan2015very,
  author = {Simonyan, Karen and Zisserman, Andrew},
  title = {Very Deep Convolutional Networks for Large-Scale Image Recognition},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2015},
  eprint = {1409.1556},
  archivePrefix = {arXiv}
}""",
    ),
    "he2016deep": (
        "He et al., 2016",
        """@inproceedings{he2016deep,
  author = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  title = {Deep Residual Learning for Image Recognition},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition
    (CVPR)},
  pages = {770--778},
  year = {2016},
  doi = {10.1109/CVPR.2016.90}
}""",
    ),
    "sandler2018mobilenetv2": (
        "Sandler et al., 2018",
        """@inproceedings{sandler2018mobilenetv2,
  author = {Sandler, Mark and Howard, Andrew and Zhu, Menglong and Zhmoginov, Andrey and Chen,
    Liang-Chieh},
  title = {{MobileNetV2}: Inverted Residuals and Linear Bottlenecks},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition
    (CVPR)},
  pages = {4510--4520},
  year = {2018},
  doi = {10.1109/CVPR.2018.00474}
}""",
    ),
    "tan2019efficientnet": (
        "Tan & Le, 2019",
        """@inproceedings{tan2019efficientnet,
  author = {Tan, Mingxing and Le, Quoc},
  title = {{EfficientNet}: Rethinking Model Scaling for Convolutional Neural Networks},
  booktitle = {Proceedings of the 36th International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {97},
  pages = {6105--6114},
  year = {2019},
  url = {https://proceedings.mlr.press/v97/tan19a.html}
}""",
    ),
    "khaireddin2021facial": (
        "Khaireddin & Chen, 2021",
        """@misc{khaireddin2021facial,
  author = {Khaireddin, Yousif and Chen, Zhuofa},
  title = {Facial Emotion Recognition: State of the Art Performance on {FER2013}},
  howpublished = {arXiv:2105.03588},
  year = {2021},
  eprint = {2105.03588},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/2105.03588}
}""",
    ),
    "ioffe2015batch": (
        "Ioffe & Szegedy, 2015",
        """@inproceedings{ioffe2015batch,
  author = {Ioffe, Sergey and Szegedy, Christian},
  title = {Batch Normalization: Accelerating Deep Network Training by Reducing Internal
    Covariate Shift},
  booktitle = {Proceedings of the 32nd International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {37},
  pages = {448--456},
  year = {2015},
  url = {https://proceedings.mlr.press/v37/ioffe15.html}
}""",
    ),
    "hu2018squeeze": (
        "Hu et al., 2018",
        """@inproceedings{hu2018squeeze,
  author = {Hu, Jie and Shen, Li and Sun, Gang},
  title = {Squeeze-and-Excitation Networks},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition
    (CVPR)},
  pages = {7132--7141},
  year = {2018},
  doi = {10.1109/CVPR.2018.00745}
}""",
    ),
    "tang2013deep": (
        "Tang, 2013",
        """@misc{tang2013deep,
  author = {Tang, Yichuan},
  title = {Deep Learning using Linear Support Vector Machines},
  howpublished = {arXiv:1306.0239},
  year = {2013},
  eprint = {1306.0239},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/1306.0239}
}""",
    ),
    "deng2009imagenet": (
        "Deng et al., 2009",
        """@inproceedings{deng2009imagenet,
  author = {Deng, Jia and Dong, Wei and Socher, Richard and Li, Li-Jia and Li, Kai and Fei-Fei,
    Li},
  title = {{ImageNet}: A Large-Scale Hierarchical Image Database},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition
    (CVPR)},
  pages = {248--255},
  year = {2009},
  doi = {10.1109/CVPR.2009.5206848}
}""",
    ),
    "he2015delving": (
        "He et al., 2015",
        """@inproceedings{he2015delving,
  author = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  title = {Delving Deep into Rectifiers: Surpassing Human-Level Performance on {ImageNet}
    Classification},
  booktitle = {Proceedings of the IEEE International Conference on Computer Vision (ICCV)},
  pages = {1026--1034},
  year = {2015},
  doi = {10.1109/ICCV.2015.123}
}""",
    ),
    "goyal2017accurate": (
        "Goyal et al., 2017",
        """@misc{goyal2017accurate,
  author = {Goyal, Priya and Doll{\\'a}r, Piotr and Girshick, Ross and Noordhuis, Pieter and
    Wesolowski, Lukasz and Kyrola, Aapo and Tulloch, Andrew and Jia, Yangqing and He, Kaiming},
  title = {Accurate, Large Minibatch {SGD}: Training {ImageNet} in 1 Hour},
  howpublished = {arXiv:1706.02677},
  year = {2017},
  eprint = {1706.02677},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/1706.02677}
}""",
    ),
    # ----------------------------------------------------------------------------- training
    "kingma2015adam": (
        "Kingma & Ba, 2015",
        """@inproceedings{kingma2015adam,
  author = {Kingma, Diederik P. and Ba, Jimmy},
  title = {Adam: A Method for Stochastic Optimization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2015},
  eprint = {1412.6980},
  archivePrefix = {arXiv}
}""",
    ),
    "loshchilov2019decoupled": (
        "Loshchilov & Hutter, 2019",
        """@inproceedings{loshchilov2019decoupled,
  author = {Loshchilov, Ilya and Hutter, Frank},
  title = {Decoupled Weight Decay Regularization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2019},
  eprint = {1711.05101},
  archivePrefix = {arXiv}
}""",
    ),
    "loshchilov2017sgdr": (
        "Loshchilov & Hutter, 2017",
        """@inproceedings{loshchilov2017sgdr,
  author = {Loshchilov, Ilya and Hutter, Frank},
  title = {{SGDR}: Stochastic Gradient Descent with Warm Restarts},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2017},
  eprint = {1608.03983},
  archivePrefix = {arXiv}
}""",
    ),
    "sutskever2013importance": (
        "Sutskever et al., 2013",
        """@inproceedings{sutskever2013importance,
  author = {Sutskever, Ilya and Martens, James and Dahl, George and Hinton, Geoffrey},
  title = {On the Importance of Initialization and Momentum in Deep Learning},
  booktitle = {Proceedings of the 30th International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {28},
  pages = {1139--1147},
  year = {2013},
  url = {https://proceedings.mlr.press/v28/sutskever13.html}
}""",
    ),
    "szegedy2016rethinking": (
        "Szegedy et al., 2016",
        """@inproceedings{szegedy2016rethinking,
  author = {Szegedy, Christian and Vanhoucke, Vincent and Ioffe, Sergey and Shlens, Jon and
    Wojna, Zbigniew},
  title = {Rethinking the Inception Architecture for Computer Vision},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition
    (CVPR)},
  pages = {2818--2826},
  year = {2016},
  doi = {10.1109/CVPR.2016.308}
}""",
    ),
    "devries2017improved": (
        "DeVries & Taylor, 2017",
        """@misc{devries2017improved,
  author = {DeVries, Terrance and Taylor, Graham W.},
  title = {Improved Regularization of Convolutional Neural Networks with {Cutout}},
  howpublished = {arXiv:1708.04552},
  year = {2017},
  eprint = {1708.04552},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/1708.04552}
}""",
    ),
    "zhang2018mixup": (
        "Zhang et al., 2018",
        """@inproceedings{zhang2018mixup,
  author = {Zhang, Hongyi and Cisse, Moustapha and Dauphin, Yann N. and Lopez-Paz, David},
  title = {mixup: Beyond Empirical Risk Minimization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2018},
  eprint = {1710.09412},
  archivePrefix = {arXiv}
}""",
    ),
    "yun2019cutmix": (
        "Yun et al., 2019",
        """@inproceedings{yun2019cutmix,
  author = {Yun, Sangdoo and Han, Dongyoon and Oh, Seong Joon and Chun, Sanghyuk and Choe,
    Junsuk and Yoo, Youngjoon},
  title = {{CutMix}: Regularization Strategy to Train Strong Classifiers with Localizable
    Features},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages = {6022--6031},
  year = {2019},
  doi = {10.1109/ICCV.2019.00612}
}""",
    ),
    "polyak1992acceleration": (
        "Polyak & Juditsky, 1992",
        """@article{polyak1992acceleration,
  author = {Polyak, Boris T. and Juditsky, Anatoli B.},
  title = {Acceleration of Stochastic Approximation by Averaging},
  journal = {SIAM Journal on Control and Optimization},
  volume = {30},
  number = {4},
  pages = {838--855},
  year = {1992},
  doi = {10.1137/0330046}
}""",
    ),
    "izmailov2018averaging": (
        "Izmailov et al., 2018",
        """@inproceedings{izmailov2018averaging,
  author = {Izmailov, Pavel and Podoprikhin, Dmitrii and Garipov, Timur and Vetrov, Dmitry and
    Wilson, Andrew Gordon},
  title = {Averaging Weights Leads to Wider Optima and Better Generalization},
  booktitle = {Proceedings of the 34th Conference on Uncertainty in Artificial Intelligence
    (UAI)},
  pages = {876--885},
  year = {2018},
  eprint = {1803.05407},
  archivePrefix = {arXiv}
}""",
    ),
    "micikevicius2018mixed": (
        "Micikevicius et al., 2018",
        """@inproceedings{micikevicius2018mixed,
  author = {Micikevicius, Paulius and Narang, Sharan and Alben, Jonah and Diamos, Gregory and
    Elsen, Erich and Garcia, David and Ginsburg, Boris and Houston, Michael and Kuchaiev,
    Oleksii and Venkatesh, Ganesh and Wu, Hao},
  title = {Mixed Precision Training},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2018},
  eprint = {1710.03740},
  archivePrefix = {arXiv}
}""",
    ),
    "kalamkar2019study": (
        "Kalamkar et al., 2019",
        """@misc{kalamkar2019study,
  author = {Kalamkar, Dhiraj and Mudigere, Dheevatsa and Mellempudi, Naveen and Das, Dipankar
    and Banerjee, Kunal and Avancha, Sasikanth and Vooturi, Dharma Teja and Jammalamadaka,
    Nataraj and Huang, Jianyu and Yuen, Hector and Yang, Jiyan and Park, Jongsoo and Heinecke,
    Alexander and Georganas, Evangelos and Srinivasan, Sudarshan and Kundu, Abhisek and
    Smelyanskiy, Misha and Kaul, Bharat and Dubey, Pradeep},
  title = {A Study of {BFLOAT16} for Deep Learning Training},
  howpublished = {arXiv:1905.12322},
  year = {2019},
  eprint = {1905.12322},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/1905.12322}
}""",
    ),
    # --------------------------------------------------------------------------- evaluation
    "efron1993introduction": (
        "Efron & Tibshirani, 1993",
        """@book{efron1993introduction,
  author = {Efron, Bradley and Tibshirani, Robert J.},
  title = {An Introduction to the Bootstrap},
  publisher = {Chapman \\& Hall/CRC},
  year = {1993}
}""",
    ),
    "cohen1960coefficient": (
        "Cohen, 1960",
        """@article{cohen1960coefficient,
  author = {Cohen, Jacob},
  title = {A Coefficient of Agreement for Nominal Scales},
  journal = {Educational and Psychological Measurement},
  volume = {20},
  number = {1},
  pages = {37--46},
  year = {1960},
  doi = {10.1177/001316446002000104}
}""",
    ),
    "krippendorff2018content": (
        "Krippendorff, 2018",
        """@book{krippendorff2018content,
  author = {Krippendorff, Klaus},
  title = {Content Analysis: An Introduction to Its Methodology},
  edition = {Fourth},
  publisher = {SAGE},
  year = {2018}
}""",
    ),
    "lin1989concordance": (
        "Lin, 1989",
        """@article{lin1989concordance,
  author = {Lin, Lawrence I-Kuei},
  title = {A Concordance Correlation Coefficient to Evaluate Reproducibility},
  journal = {Biometrics},
  volume = {45},
  number = {1},
  pages = {255--268},
  year = {1989},
  doi = {10.2307/2532051}
}""",
    ),
    "kossaifi2017afew": (
        "Kossaifi et al., 2017",
        """@article{kossaifi2017afew,
  author = {Kossaifi, Jean and Tzimiropoulos, Georgios and Todorovic, Sinisa and Pantic, Maja},
  title = {{AFEW-VA} Database for Valence and Arousal Estimation In-the-Wild},
  journal = {Image and Vision Computing},
  volume = {65},
  pages = {23--36},
  year = {2017},
  doi = {10.1016/j.imavis.2017.02.001}
}""",
    ),
    "sagonas2016300": (
        "Sagonas et al., 2016",
        """@article{sagonas2016300,
  author = {Sagonas, Christos and Antonakos, Epameinondas and Tzimiropoulos, Georgios and
    Zafeiriou, Stefanos and Pantic, Maja},
  title = {300 Faces In-The-Wild Challenge: Database and Results},
  journal = {Image and Vision Computing},
  volume = {47},
  pages = {3--18},
  year = {2016},
  doi = {10.1016/j.imavis.2016.01.002}
}""",
    ),
    "krizhevsky2012imagenet": (
        "Krizhevsky et al., 2012",
        """@inproceedings{krizhevsky2012imagenet,
  author = {Krizhevsky, Alex and Sutskever, Ilya and Hinton, Geoffrey E.},
  title = {{ImageNet} Classification with Deep Convolutional Neural Networks},
  booktitle = {Advances in Neural Information Processing Systems 25 (NeurIPS)},
  pages = {1097--1105},
  year = {2012},
  url = {https://proceedings.neurips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html}
}""",
    ),
    "hendrycks2019benchmarking": (
        "Hendrycks & Dietterich, 2019",
        """@inproceedings{hendrycks2019benchmarking,
  author = {Hendrycks, Dan and Dietterich, Thomas},
  title = {Benchmarking Neural Network Robustness to Common Corruptions and Perturbations},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2019},
  eprint = {1903.12261},
  archivePrefix = {arXiv}
}""",
    ),
    "guo2017calibration": (
        "Guo et al., 2017",
        """@inproceedings{guo2017calibration,
  author = {Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  title = {On Calibration of Modern Neural Networks},
  booktitle = {Proceedings of the 34th International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {70},
  pages = {1321--1330},
  year = {2017},
  url = {https://proceedings.mlr.press/v70/guo17a.html}
}""",
    ),
    "selvaraju2017gradcam": (
        "Selvaraju et al., 2017",
        """@inproceedings{selvaraju2017gradcam,
  author = {Selvaraju, Ramprasaath R. and Cogswell, Michael and Das, Abhishek and Vedantam,
    Ramakrishna and Parikh, Devi and Batra, Dhruv},
  title = {{Grad-CAM}: Visual Explanations from Deep Networks via Gradient-Based Localization},
  booktitle = {Proceedings of the IEEE International Conference on Computer Vision (ICCV)},
  pages = {618--626},
  year = {2017},
  doi = {10.1109/ICCV.2017.74}
}""",
    ),
    "zauner2010implementation": (
        "Zauner, 2010",
        """@mastersthesis{zauner2010implementation,
  author = {Zauner, Christoph},
  title = {Implementation and Benchmarking of Perceptual Image Hash Functions},
  school = {Upper Austria University of Applied Sciences, Hagenberg Campus},
  year = {2010}
}""",
    ),
    # ----------------------------------------------------------------------------- software
    "abadi2016tensorflow": (
        "Abadi et al., 2016",
        """@inproceedings{abadi2016tensorflow,
  author = {Abadi, Mart{\\'\\i}n and Barham, Paul and Chen, Jianmin and Chen, Zhifeng and Davis,
    Andy and Dean, Jeffrey and Devin, Matthieu and Ghemawat, Sanjay and Irving, Geoffrey and
    Isard, Michael and Kudlur, Manjunath and Levenberg, Josh and Monga, Rajat and Moore, Sherry
    and Murray, Derek G. and Steiner, Benoit and Tucker, Paul and Vasudevan, Vijay and Warden,
    Pete and Wicke, Martin and Yu, Yuan and Zheng, Xiaoqiang},
  title = {{TensorFlow}: A System for Large-Scale Machine Learning},
  booktitle = {12th USENIX Symposium on Operating Systems Design and Implementation (OSDI)},
  pages = {265--283},
  year = {2016},
  url = {https://www.usenix.org/conference/osdi16/technical-sessions/presentation/abadi}
}""",
    ),
    "chollet2015keras": (
        "Chollet et al., 2015",
        # "and others" is how the Keras team asks to be cited: the contributors are many
        """@misc{chollet2015keras,
  author = {Chollet, Fran{\\c{c}}ois and others},
  title = {Keras},
  year = {2015},
  url = {https://keras.io}
}""",
    ),
    "pedregosa2011scikit": (
        "Pedregosa et al., 2011",
        """@article{pedregosa2011scikit,
  author = {Pedregosa, Fabian and Varoquaux, Ga{\\"e}l and Gramfort, Alexandre and Michel,
    Vincent and Thirion, Bertrand and Grisel, Olivier and Blondel, Mathieu and Prettenhofer,
    Peter and Weiss, Ron and Dubourg, Vincent and Vanderplas, Jake and Passos, Alexandre and
    Cournapeau, David and Brucher, Matthieu and Perrot, Matthieu and Duchesnay, {\\'E}douard},
  title = {Scikit-learn: Machine Learning in {Python}},
  journal = {Journal of Machine Learning Research},
  volume = {12},
  pages = {2825--2830},
  year = {2011},
  url = {https://jmlr.org/papers/v12/pedregosa11a.html}
}""",
    ),
    "buslaev2020albumentations": (
        "Buslaev et al., 2020",
        """@article{buslaev2020albumentations,
  author = {Buslaev, Alexander and Iglovikov, Vladimir I. and Khvedchenya, Eugene and Parinov,
    Alex and Druzhinin, Mikhail and Kalinin, Alexandr A.},
  title = {Albumentations: Fast and Flexible Image Augmentations},
  journal = {Information},
  volume = {11},
  number = {2},
  pages = {125},
  year = {2020},
  doi = {10.3390/info11020125}
}""",
    ),
    "bradski2000opencv": (
        "Bradski, 2000",
        """@article{bradski2000opencv,
  author = {Bradski, Gary},
  title = {The {OpenCV} Library},
  journal = {Dr. Dobb's Journal of Software Tools},
  year = {2000}
}""",
    ),
}


# a citation in a text, rendered later, named by the natbib command a LaTeX writer gives it:
# citep in parentheses of its own, citealp inside a parenthesis the text opened
MARKER = "\u27e8cit(?:ep|ealp):[^\u27e9]+\u27e9"
CITE = re.compile("\u27e8(citep|citealp):([^\u27e9]+)\u27e9")


class Citations:
    """The keys a text cites, in the order first cited. A call returns a marker that
    `markdown` renders as (Author et al., 2016) and a LaTeX writer as \\citep{key}; `within`
    one for inside a parenthesis: Author et al., 2016 (\\citealp)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, *keys: str) -> str:
        """A marker for these works, remembered for the bibliography."""
        return self._marker("citep", keys)

    def within(self, *keys: str) -> str:
        """A marker for these works inside a parenthesis the text opened, "(perceptual hash;
        Zauner, 2010)", remembered for the bibliography."""
        return self._marker("citealp", keys)

    def _marker(self, command: str, keys: tuple[str, ...]) -> str:
        """The marker, each key checked against REFERENCES and remembered."""
        for key in keys:
            if key not in REFERENCES:
                raise KeyError(f"no reference {key!r} in helpers.reporting.references")
            if key not in self.keys:
                self.keys.append(key)
        return f"\u27e8{command}:" + ",".join(keys) + "\u27e9"

    def bibtex(self) -> str:
        """The cited works' BibTeX entries, in the order first cited."""
        return bibtex(self.keys)


def cited(text: str) -> tuple[str, ...]:
    """The keys a text's markers cite, in the order first cited: what its bibliography holds."""
    keys: dict[str, None] = {}
    for match in CITE.finditer(text):
        keys.update(dict.fromkeys(match.group(2).split(",")))
    return tuple(keys)


def markdown(text: str) -> str:
    """Citation markers as "(Author et al., 2016; Other, 2017)", two works whose author-year
    text would read alike told apart as 2018a and 2018b, as the reference list gives them."""
    labels = _labels(cited(text))

    def render(match: re.Match[str]) -> str:
        inner = "; ".join(labels[key] for key in match.group(2).split(","))
        return inner if match.group(1) == "citealp" else f"({inner})"

    return CITE.sub(render, text)


def bibtex(keys: Iterable[str]) -> str:
    """BibTeX entries of these keys, one blank line apart."""
    return "\n\n".join(REFERENCES[k][1] for k in keys) + "\n"


def reference_list(keys: Iterable[str]) -> str:
    """The works as a Markdown "References" section, one paragraph each, sorted by author and
    year, in the author-year form the citations take; empty for no works."""
    keys = tuple(keys)
    if not keys:
        return ""
    labels = _labels(keys)
    entries = [_entry(key, labels[key].rsplit(", ", 1)[1]) for key in _sorted(keys)]
    return "### References\n\n" + "\n\n".join(entries) + "\n"


# ------------------------------------------------------------------------------- the entries


def fields(key: str) -> dict[str, str]:
    """An entry's fields as BibTeX holds them (braces and TeX kept, lines joined), with its
    type under "type"."""
    entry = REFERENCES[key][1]
    kind = re.match(r"@(\w+)\{", entry)
    assert kind is not None, key
    out = {"type": kind.group(1).lower()}
    for name in re.finditer(r"^  (\w+) = \{", entry, flags=re.MULTILINE):
        depth, end = 1, name.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(entry[end], 0)
            end += 1
        out[name.group(1).lower()] = " ".join(entry[name.end() : end - 1].split())
    return out


def _labels(keys: Iterable[str]) -> dict[str, str]:
    """Each key's author-year text; where two read alike, the year gets a, b, ... in the order
    the reference list sorts them."""
    ordered = _sorted(dict.fromkeys(keys))
    labels = {key: REFERENCES[key][0] for key in ordered}
    for key in ordered:
        alike = [k for k in ordered if REFERENCES[k][0] == REFERENCES[key][0]]
        if len(alike) > 1:
            labels[key] += "abcdefghijklmnopqrstuvwxyz"[alike.index(key)]
    return labels


def _sorted(keys: Iterable[str]) -> list[str]:
    """The keys in reference-list order: authors' surnames, then year, then title."""

    def order(key: str) -> tuple[str, str, str]:
        entry = fields(key)
        folded = unicodedata.normalize("NFKD", _names(entry["author"])).casefold()
        plain = "".join(c for c in folded if not unicodedata.combining(c))
        return plain, entry["year"], _plain(entry["title"]).casefold()

    return sorted(keys, key=order)


def _entry(key: str, year: str) -> str:
    """One work in the list: "Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic
    Optimization. In *International Conference on Learning Representations (ICLR)*."."""
    entry = fields(key)
    title = _plain(entry["title"])
    if "edition" in entry:
        title += f" ({entry['edition']} edition)"
    text = f"{_names(entry['author'])} ({year}). {title}{'' if title[-1] in '?!' else '.'}"
    venue = _venue(entry)
    if venue:
        text += f" {venue}."
    if entry.get("archiveprefix") == "arXiv" and "arXiv:" not in venue:
        text += f" arXiv:{entry['eprint']}."
    if "doi" in entry:
        text += f" <https://doi.org/{entry['doi']}>"
    elif "url" in entry:
        text += f" <{entry['url']}>"
    return text


def _venue(entry: dict[str, str]) -> str:
    """Where the work appeared: journal, volume(number), pages; "In" the proceedings, pages;
    the publisher and edition of a book; the school of a thesis; else how it was published."""
    pages = _plain(entry.get("pages", ""))
    kind = entry["type"]
    if kind == "article":
        where = f"*{_plain(entry['journal'])}*"
        if "volume" in entry:
            where += f", {entry['volume']}" + (f"({entry['number']})" if "number" in entry else "")
        return where + (f", {pages}" if pages else "")
    if kind == "inproceedings":
        where = f"In *{_plain(entry['booktitle'])}*"
        if "series" in entry and "volume" in entry:
            where += f", {_plain(entry['series'])} {entry['volume']}"
        return where + (f", pp. {pages}" if pages else "")
    if kind == "book":
        return _plain(entry["publisher"])
    if kind == "mastersthesis":
        return f"Master's thesis, {_plain(entry['school'])}"
    return _plain(entry.get("howpublished", ""))


def _names(authors: str) -> str:
    """A BibTeX author field as "Kingma, D. P. and Ba, J.", or "A, B., C, D. and E, F."."""
    people = []
    for person in re.split(r"\s+and\s+", _plain(authors)):
        if person == "others":
            people[-1] += " et al."
            continue
        last, _, first = person.partition(", ")
        initials = " ".join(
            "-".join(part[0] + "." for part in word.split("-") if part) for word in first.split()
        )
        people.append(f"{last}, {initials}" if initials else last)
    if len(people) == 1:  # one author, or "Chollet, F. et al." where the entry ends "and others"
        return people[0]
    return ", ".join(people[:-1]) + " and " + people[-1]


_ACCENTS = {"'": "\u0301", '"': "\u0308", "`": "\u0300", "^": "\u0302", "~": "\u0303",
            "c": "\u0327", "v": "\u030c", "=": "\u0304", ".": "\u0307", "u": "\u0306",
            "H": "\u030b"}  # fmt: skip


def _plain(tex: str) -> str:
    """BibTeX text as Unicode: accents composed, \\& as &, -- as an en dash, braces gone."""
    tex = re.sub(
        r"\\([\'\"`^~=.]|[cvuH](?=[\s{]))\s*\{?\\?([A-Za-z])\}?",
        lambda m: ("i" if m.group(2) == "i" else m.group(2)) + _ACCENTS[m.group(1)],
        tex,
    )
    tex = tex.replace("\\&", "&").replace("--", "\u2013").replace("~", "\u00a0")
    return unicodedata.normalize("NFC", tex.replace("{", "").replace("}", ""))
